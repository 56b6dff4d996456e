"""Counterfactual answer rows for policy SFT: the answer repeats the printed output, whatever it is.

The mini world's student loses most of its remaining problems after its program has printed the right
value: it boxes something else (`<output>210` answered `\\boxed{292}`). `bench/answer_copy.py` shows why:
given a right solution whose output is swapped for a random value, the round-4 policies box a 2-digit
value 98-100% of the time, a 3-digit one 13-21% and a 4-digit one almost never. Verified SFT data holds few
long answers to copy, so the copy of long numbers is never learnt.

A counterfactual row is a training row whose final output and boxed answer are both replaced by one
new value, mostly of three or four digits; every step before them is unchanged. The interpreter writes
`<output>` blocks at generation time, so the altered output is context the policy reads, never text it
is asked to produce in use (with `mask_tool_output` off, as in the presets, the loss covers it too, though the
policy never writes an output in use). Rows whose last output has several lines, or whose answer is not that
output, are not drawn.
"""

from __future__ import annotations

import random
import re

from rstar_pipeline.steps import ANSWER, OUTPUT, OUTPUT_END

# the last output block, then the answer step with its \boxed{} value
_TAIL = re.compile(re.escape(OUTPUT) + r"([^<\n]*)" + re.escape(OUTPUT_END) + r"(\s*" + re.escape(ANSWER)
                   + r".*?\\boxed\{)([^{}]*)(\}.*)$", re.S)
DIGITS = (2, 3, 3, 4)  # a new value's length in digits, drawn from these: the lengths the student fails to copy
SUFFIX = "~copy"  # problem_id of a counterfactual row: its source's id + SUFFIX


def counterfactual_rows(rows: list[dict], share: float, seed: int) -> list[dict]:
    """`share * len(rows)` rows (at most one per row) drawn from `rows`, seeded, each with its last output
    and boxed answer set to one new value."""
    rng = random.Random(f"answer-copy:{seed}")
    usable = [(r, m) for r in rows if (m := _TAIL.search(r["completion"])) and m.group(1).strip() == m.group(3).strip()]
    out = []
    for row, m in rng.sample(usable, min(len(usable), round(share * len(rows)))):
        digits = rng.choice(DIGITS)
        value = str(rng.randint(10 ** (digits - 1), 10 ** digits - 1))
        completion = row["completion"][:m.start()] + f"{OUTPUT}{value}{OUTPUT_END}" + m.group(2) + value + m.group(4)
        out.append({**row, "problem_id": row["problem_id"] + SUFFIX, "completion": completion})
    return out
