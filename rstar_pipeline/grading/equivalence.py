"""Answer equivalence: exact numeric comparison first, then math-verify for symbolic answers.

Time is bounded by math-verify's own timeouts (signal based, so only in the main thread; elsewhere
they are off and the input-size cap is the only bound) and input size is capped. It does not yet
run math-verify in a killable worker process or normalise units, sets and matrices beyond what
math-verify knows.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Sequence

_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
_FRAC = re.compile(r"^([-+]?)\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")


@dataclass(frozen=True)
class GradingConfig:
    timeout_s: int = field(default=2, metadata={"help": "math-verify parse and verify timeout per call, seconds"})
    max_chars: int = field(default=2000, metadata={"help": "longer predictions are judged wrong without parsing"})


def is_equivalent(prediction: str | None, answers: Sequence[str], config: GradingConfig = GradingConfig()) -> bool:
    """True when `prediction` matches any of the accepted `answers`."""
    if prediction is None or not prediction.strip() or len(prediction) > config.max_chars:
        return False
    pred_num = parse_number(prediction)
    for answer in answers:
        if prediction.strip() == answer.strip():
            return True
        gold_num = parse_number(answer)
        if pred_num is not None and gold_num is not None:
            if pred_num == gold_num:
                return True
            continue  # both plain numbers and different: no symbolic check can make them equal
        if _math_verify(prediction, answer, config):
            return True
    return False


def parse_number(text: str) -> Fraction | None:
    """An exact number from an answer string (int, decimal, a/b, \\frac{a}{b}, 1,000), else None."""
    s = text.strip().strip("$").strip()
    s = s.replace("\\!", "").replace("{,}", ",").replace(" ", "")
    if s.endswith("."):
        s = s[:-1]
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    m = _FRAC.match(s)
    if m:
        num, den = parse_number(m.group(2)), parse_number(m.group(3))
        if num is None or den is None or den == 0:
            return None
        return -num / den if m.group(1) == "-" else num / den
    if "/" in s:
        num, _, den = s.partition("/")
        n, d = parse_number(num), parse_number(den)
        return n / d if n is not None and d not in (None, 0) else None
    if _NUMBER.fullmatch(s):
        try:
            return Fraction(s)
        except (ValueError, ZeroDivisionError):
            return None
    return None


def _math_verify(prediction: str, answer: str, config: GradingConfig) -> bool:
    from math_verify import parse, verify  # slow import, only needed for symbolic answers

    timeout = config.timeout_s if threading.current_thread() is threading.main_thread() else None
    try:
        gold = parse(f"${answer}$", parsing_timeout=timeout)
        pred = parse(f"${prediction}$", parsing_timeout=timeout)
        return bool(gold and pred and verify(gold, pred, timeout_seconds=timeout))
    except Exception:  # math-verify raises on odd input; an unparsable answer is not a match
        return False
