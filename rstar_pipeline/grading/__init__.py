"""Final-answer extraction and equivalence: is a predicted answer one of the accepted answers?

Covers the last-`\\boxed{}` extraction (`extract`), normalisation of answer spellings (`normalize`)
and `is_equivalent` (strings, then exact numbers, then math-verify and sympy in a worker process that is
killed on overrun: `verifier`), with bounded time and input size. It never executes the answer text.
"""

from rstar_pipeline.grading.equivalence import GradingConfig, is_equivalent, parse_number
from rstar_pipeline.grading.extract import extract_boxed

__all__ = ["GradingConfig", "extract_boxed", "is_equivalent", "parse_number"]
