"""Answer extraction and equivalence (the round-1 subset; the full grader has its own issue)."""

import json
import pytest

from rstar_pipeline.grading import extract_boxed, is_equivalent, parse_number
from shared_data import SHARED_DATA, needs_shared



@pytest.mark.parametrize("text, expected", [
    ("so \\boxed{5}.", "5"),
    ("\\boxed{1} then \\boxed{\\frac{2}{3}}", "\\frac{2}{3}"),
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
    ("\\boxed 9.", "9"),
    ("\\fbox{x}", "x"),
    ("no answer", None),
    ("\\boxed{unbalanced", None),
])
def test_extract_last_boxed(text, expected):
    """The content of the last \\boxed{}, braces matched, or None."""
    assert extract_boxed(text) == expected


@pytest.mark.parametrize("pred, answers, expected", [
    ("5", ["5"], True),
    ("5.0", ["5"], True),
    ("1,000", ["1000"], True),
    ("\\frac{1}{2}", ["0.5"], True),
    ("-3/4", ["-0.75"], True),
    ("6", ["5"], False),
    ("7", ["5", "7"], True),
    ("\\sqrt{4}", ["2"], True),
    ("x+1", ["1+x"], True),
    (None, ["1"], False),
    ("", ["1"], False),
    ("1" * 5000, ["1"], False),
])
def test_is_equivalent(pred, answers, expected):
    """Exact numbers first, math-verify for symbolic answers, any accepted answer matches."""
    assert is_equivalent(pred, answers) is expected


def test_parse_number_is_exact():
    """No float rounding: 0.1 + 0.2 style problems do not arise."""
    assert parse_number("0.1") + parse_number("0.2") == parse_number("0.3")
    assert parse_number("123456789012345678901234567890") == 123456789012345678901234567890
    assert parse_number("abc") is None and parse_number("1/0") is None


@needs_shared
def test_gsm8k_answers_equal_themselves_and_boxed():
    """Every GSM8K test answer is equivalent to itself and to its \\boxed{} extraction."""
    path = SHARED_DATA / "eval" / "gsm8k_test.json"
    for item in json.loads(path.read_text()):
        a = str(item["answer"])
        assert is_equivalent(a, [a]) and is_equivalent(extract_boxed(f"\\boxed{{{a}}}"), [a])
