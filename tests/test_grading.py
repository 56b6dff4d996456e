"""Answer extraction and equivalence: real benchmark answers, rewrites of every answer type, and
hostile input that must neither hang the grader nor run."""

import json
import time

import pytest

from rstar_pipeline.grading import extract_boxed, is_equivalent, parse_number
from rstar_pipeline.grading.normalize import close_braces
from rstar_pipeline.evaluation import EvalConfig, load_benchmark
from rstar_pipeline.problemsets import ProblemsConfig, load_problems
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
def test_every_benchmark_answer_equals_itself_and_its_boxed_form():
    """All nine eval files, loaded as the evaluation loads them: each reference answer is equivalent to
    itself and to what extract_boxed takes out of a sentence that boxes it. The 11 empty references are
    rejected rows (named, with the reason), and the 7 cut off in the source data (omni) are repaired;
    nothing else is left out (repeated questions and proof-length answers included)."""
    failed, total, rejected = [], 0, []
    for path in sorted((SHARED_DATA / "eval").glob("*.json")):
        _, problems, bad = load_benchmark(str(path), EvalConfig())
        rejected += [(path.name, r.row, r.reason) for r in bad]
        for p in problems:
            for a in p.answers:
                total += 1
                boxed = extract_boxed(f"So the answer is $\\boxed{{{a}}}$.")
                if not (is_equivalent(a, p.answers) and is_equivalent(boxed, p.answers)):
                    failed.append((path.name, a))
    assert failed == [] and total == 15199 - 11
    assert sorted(rejected) == sorted([("gaokao2023en_test.json", i + 1, "missing answer") for i in (167, 192)]
                                      + [("omni_test.json", i + 1, "missing answer")
                                         for i in (4146, 4160, 4167, 4181, 4232, 4249, 4339, 4399, 4415)])


@needs_shared
def test_cut_off_references_get_their_closing_braces_back():
    problems, _ = load_problems(ProblemsConfig(source=str(SHARED_DATA / "eval" / "omni_test.json"), split="test"))
    answers = {a for p in problems for a in p.answers}
    assert "\\frac{5055}{2^{15}}" in answers and "\\frac{5055}{2^{15}" not in answers
    assert is_equivalent("\\frac{5055}{32768}", ["\\frac{5055}{2^{15}}"])


@pytest.mark.parametrize("text, expected", [
    ("\\frac{1}{2^{3}", "\\frac{1}{2^{3}}"), ("\\right.\\", "\\right."), ("\\{1, 2\\}", "\\{1, 2\\}"),
    ("1 \\\\ 2", "1 \\\\ 2"), ("x}", "x}"), ("", ""),
])
def test_close_braces(text, expected):
    assert close_braces(text) == expected


EQUIVALENT = [
    ("0.5", "\\frac{1}{2}"), ("\\dfrac{1}{2}", "\\frac12"), ("1/2", "\\tfrac{1}{2}"), ("-\\frac{3}{4}", "-0.75"),
    ("\\frac{-3}{4}", "-\\frac34"), ("10", "10.0"), ("7.", "7"), ("$7$", "7"), ("1e3", "1000"),
    ("2\\sqrt{2}", "\\sqrt{8}"), ("\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2"), ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt2}{2}"),
    ("2\\pi", "2 \\pi"), ("\\frac{\\pi}{2}", "\\pi/2"), ("\\frac{3\\pi}{4}", "\\frac34\\pi"),
    ("(1, 2]", "(1,2]"), ("[-1, \\infty)", "[-1,\\infty)"), ("(-\\infty, 0) \\cup (1, \\infty)", "(-\\infty,0)\\cup(1,\\infty)"),
    ("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)"), ("(1, 2, 3)", "(1,2,3)"),
    ("\\{1, 2, 3\\}", "\\{3, 2, 1\\}"), ("1, 2, 3", "3, 1, 2"),
    ("x = 3", "3"), ("y=2x+1", "2x+1"), ("x^2+2x+1", "(x+1)^2"),
    ("30^\\circ", "30"), ("30^{\\circ}", "30"), ("45°", "45"), ("50\\%", "50"), ("50%", "50"),
    ("\\$18", "18"), ("18 \\text{ dollars}", "18"), ("5 \\text{ cm}", "5"), ("12\\text{ inches}", "12"), ("\\text{5}", "5"),
    ("1,000", "1000"), ("1{,}000", "1000"), ("12,345,678", "12345678"), ("1\\!000", "1000"),
    ("(B)", "B"), ("\\text{(C)}", "C"), ("D", "\\text{D}"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"),
    ("\\boxed{7}", "7"), ("\\(\\boxed{337}\\)", "337"), ("so \\(x\\) is \\boxed{9}.", "9"),
]


NOT_EQUIVALENT = [
    ("0.5", "\\frac{1}{3}"), ("-5", "5"), ("1,2", "12"), ("1,000", "100"), ("1e3", "1"),
    ("2\\sqrt{2}", "\\sqrt{2}"), ("\\pi", "3.14"), ("(1, 2]", "[1, 2]"), ("(1, 2)", "(2, 1)"),
    ("\\{1, 2\\}", "\\{1, 3\\}"), ("x = 4", "3"), ("x^2+1", "(x+1)^2"), ("3x", "3"),
    ("30^\\circ", "60"), ("50\\%", "5"), ("12 cm", "13"),
    ("(B)", "C"), ("B", "2"), ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}2\\\\1\\end{pmatrix}"),
]


@pytest.mark.parametrize("a, b", EQUIVALENT)


def test_equivalent_rewrites(a, b):
    """Each rewrite matches, both ways round."""
    assert is_equivalent(a, [b]) and is_equivalent(b, [a])


@pytest.mark.parametrize("a, b", NOT_EQUIVALENT)


def test_non_equivalent_rewrites(a, b):
    assert not is_equivalent(a, [b]) and not is_equivalent(b, [a])


HOSTILE = ["10^{10^{10^{10}}}", "9^{9^{9^{9^{9}}}}", "1e999999999", "(" * 500 + "1" + ")" * 500,
           "\\frac{", "}}}{{{", "\\boxed{\\boxed{", "x" * 5000,
           "__import__('os').system('touch {marker}')", "exec(\"open('{marker}', 'w')\")"]


def test_hostile_input_returns_within_the_time_bound_and_runs_nothing(tmp_path):
    """No input hangs the grader (a comparison worker that overruns is killed) and none is executed.
    The bound checked is generous: timeout + 1 s for the kill + restart slack, never seconds more."""
    from rstar_pipeline.grading import GradingConfig

    config = GradingConfig(timeout_s=1)
    marker = tmp_path / "ran"
    for text in HOSTILE:
        text = text.replace("{marker}", str(marker))
        start = time.monotonic()
        assert not is_equivalent(text, ["1"], config)
        assert time.monotonic() - start < 10, text
    assert not marker.exists()
    assert is_equivalent("\\sqrt{4}", ["2"], config)  # the grader still works after a killed comparison


def test_an_overrunning_comparison_is_killed():
    """The parent stops waiting at its bound and kills the child; a new child serves the next call."""
    from rstar_pipeline.grading.verifier import _Worker, verify

    worker = _Worker(memory_mb=2048)
    assert worker.ask({"prediction": "x+1", "answers": ["1+x"], "timeout": 5}, 30) is True  # warm
    assert worker.ask({"prediction": "10^{10^{10^{10}}}", "answers": ["1"], "timeout": 60}, 0.5) is None
    worker.kill()
    assert not worker.alive()
    assert verify("x+1", ["1+x"], timeout_s=2)
