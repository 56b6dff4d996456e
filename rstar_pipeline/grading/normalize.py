"""Normalisation of answer strings before they are compared: what reference answers and model answers
write differently for the same value, and what math-verify does not strip itself.

Covers: `$`, `\\boxed{}` wrappers, `\\text{}`/`\\mathrm{}`/`\\mbox{}` (kept as their content), spacing
commands, `\\left`/`\\right`, `\\dfrac`/`\\tfrac`, degrees, percent and dollar signs, trailing units after a
number ("5 cm", "12 \\text{ inches}"), `x = 3` (the right-hand side of a single equation), multiple-choice
letters ("(B)", "\\text{(B)}", "B)"), and a trailing full stop. It does not decide equivalence; it only
makes equal things look alike. Pure string work: nothing is parsed or evaluated here.
"""

from __future__ import annotations

import re

from rstar_pipeline.grading.extract import extract_boxed

_WRAPPERS = ("\\boxed", "\\fbox", "\\text", "\\textbf", "\\mathrm", "\\mbox", "\\mathbf")
_DROP = ("\\(", "\\)", "\\[", "\\]", "\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\quad", "\\qquad", "\\displaystyle", "\\$", "$")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree")
_PERCENT = re.compile(r"\\?%")
_CHOICE = re.compile(r"^\(?([A-E])\)?[.:]?$")
# a number, whitespace, then words of two letters or more ("5 cm", "18 dollars"); "3x" is not a unit
_NUMBER_WITH_UNIT = re.compile(r"^([-+]?[\d.,/]+(?:\\frac\{[^{}]*\}\{[^{}]*\})?)\s+[a-zA-Z]{2,}[a-zA-Z\s.^\d]*$")
_EQUATION = re.compile(r"^[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*([^=]+)$")


def normalize(text: str) -> str:
    s = text.strip()
    if "\\boxed" in s or "\\fbox" in s:  # a reference that still boxes its answer inside a sentence
        s = extract_boxed(s) or s
    s = _unwrap(s)
    for token in _DROP:
        s = s.replace(token, "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\dots", "\\ldots")
    s = _DEGREES.sub("", s)
    s = _PERCENT.sub("", s)
    s = s.strip().rstrip(".").strip()
    m = _CHOICE.match(s)
    if m:
        return m.group(1)
    m = _EQUATION.match(s)
    if m:
        s = m.group(1).strip()
    m = _NUMBER_WITH_UNIT.match(s)
    if m:
        s = m.group(1)
    return " ".join(s.split())


def close_braces(text: str) -> str:
    """`text` with the closing braces it lacks appended and a dangling final backslash dropped: repairs
    a reference cut off in its source data (omni's `\\frac{5055}{2^{15}`), so that it can match itself and
    its boxed form. Escaped braces (`\\{`) do not count; balanced text comes back unchanged."""
    depth, i = 0, 0
    while i < len(text):
        if text[i] == "\\":
            if i == len(text) - 1:
                text = text[:-1]
                break
            i += 2
            continue
        if text[i] == "{":
            depth += 1
        elif text[i] == "}" and depth:
            depth -= 1
        i += 1
    return text + "}" * depth


def _unwrap(s: str) -> str:
    """Replace every `\\text{X}`-like wrapper by X (nested braces kept); unbalanced input is left alone."""
    for name in _WRAPPERS:
        start = s.find(name + "{")
        guard = 0
        while start >= 0 and guard < 100:
            guard += 1
            end = _closing(s, start + len(name))
            if end < 0:
                break
            s = s[:start] + s[start + len(name) + 1:end] + s[end + 1:]
            start = s.find(name + "{")
    return s


def _closing(s: str, open_at: int) -> int:
    depth = 0
    for j in range(open_at, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return -1
