"""Answer equivalence: is a predicted answer one of the accepted answers?

Both sides are normalised (`normalize.py`), then compared as strings, then as exact numbers (ints,
decimals, fractions in any LaTeX spelling, thousands separators; no float rounding), and only then
symbolically by math-verify and sympy in a worker process that is killed on overrun (`verifier.py`):
radicals, pi, intervals, tuples (ordered), sets (unordered), matrices, expressions. Multiple-choice
letters compare as letters only. Inputs longer than `max_chars` are judged wrong unread, so a call
costs at most about `timeout_s` whatever the input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Sequence

from rstar_pipeline.grading.normalize import normalize
from rstar_pipeline.grading.verifier import verify

_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE]([-+]?\d+))?")
_FRAC = re.compile(r"^([-+]?)\\frac\{([^{}]+)\}\{([^{}]+)\}$")
_SHORT_FRAC = re.compile(r"^([-+]?)\\frac(\d)(\d)$")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")
_CHOICE = re.compile(r"^[A-E]$")
MAX_EXPONENT = 400  # 1e400 is exact; 1e999999999 would be a billion-digit integer


@dataclass(frozen=True)
class GradingConfig:
    timeout_s: float = field(default=3.0, metadata={"help": "symbolic comparison time limit per call, seconds"})
    max_chars: int = field(default=2000, metadata={"help": "longer predictions or answers are judged wrong unread"})
    memory_mb: int = field(default=2048, metadata={"help": "address-space limit of the comparison worker, MiB"})


def is_equivalent(prediction: str | None, answers: Sequence[str], config: GradingConfig = GradingConfig()) -> bool:
    """True when `prediction` matches any of the accepted `answers`."""
    if prediction is None or not prediction.strip():
        return False
    if any(prediction.strip() == answer.strip() for answer in answers):
        return True  # cheap at any length: a long reference (a proof) still matches itself
    if len(prediction) > config.max_chars:
        return False
    pred = normalize(prediction)
    pred_num = parse_number(pred)
    symbolic = []
    for answer in answers:
        if len(answer) > config.max_chars:
            continue
        gold = normalize(answer)
        if pred == gold:
            return True
        gold_num = parse_number(gold)
        if pred_num is not None and gold_num is not None:
            if pred_num == gold_num:
                return True
            continue  # two plain numbers that differ: no symbolic check can make them equal
        if _CHOICE.match(pred) or _CHOICE.match(gold):
            continue  # a letter only matches the same letter
        symbolic.append(gold)
    return bool(pred and symbolic) and verify(pred, symbolic, config.timeout_s, config.memory_mb)


def parse_number(text: str) -> Fraction | None:
    """An exact number from an answer string (int, decimal, a/b, \\frac{a}{b}, 1,000), else None."""
    s = text.strip().strip("$").strip()
    s = s.replace("\\!", "").replace("{,}", ",").replace(" ", "").replace("\\dfrac", "\\frac")
    if s.endswith("."):
        s = s[:-1]
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    m = _FRAC.match(s) or _SHORT_FRAC.match(s)
    if m:
        num, den = parse_number(m.group(2)), parse_number(m.group(3))
        if num is None or den is None or den == 0:
            return None
        return -num / den if m.group(1) == "-" else num / den
    if "/" in s:
        num, _, den = s.partition("/")
        n, d = parse_number(num), parse_number(den)
        return n / d if n is not None and d not in (None, 0) else None
    m = _NUMBER.fullmatch(s)
    if m and (m.group(4) is None or abs(int(m.group(4))) <= MAX_EXPONENT):
        return Fraction(s)
    return None
