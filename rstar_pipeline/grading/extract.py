"""Answer extraction: the content of the last `\\boxed{...}` (or `\\fbox{...}`), braces matched.

Returns None when there is no boxed answer; it never falls back to the whole text (the reference
code does, and then grades a sentence as an answer).
"""

from __future__ import annotations

_OPENERS = ("\\boxed", "\\fbox")


def extract_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} in `text`, or None. Handles nesting and `\\boxed 5`."""
    start = max(text.rfind(op) for op in _OPENERS)
    while start >= 0:
        found = _boxed_at(text, start)
        if found is not None:
            return found
        start = max(text.rfind(op, 0, start) for op in _OPENERS)
    return None


def _boxed_at(text: str, start: int) -> str | None:
    i = text.index("{", start) if "{" in text[start:start + 8] else -1
    if i < 0:  # "\boxed 5": the argument is the next token
        rest = text[start:].split(None, 1)
        if len(rest) < 2 or rest[0] not in _OPENERS:
            return None
        token = rest[1].split()[0].rstrip(".,;$")
        return token or None
    depth, j = 0, i
    while j < len(text):
        if text[j] == "\\":  # an escaped character (\{, \}, \\) is content, not a brace
            j += 2
            continue
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j].strip()
        j += 1
    return None  # unbalanced braces: no answer rather than a guess
