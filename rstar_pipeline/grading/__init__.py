"""Final-answer extraction and equivalence: is a predicted answer one of the accepted answers?

Covers the last-`\\boxed{}` extraction and `is_equivalent` (exact numbers first, then math-verify),
with bounded time and input size. It never executes the answer text.
"""

from rstar_pipeline.grading.equivalence import GradingConfig, is_equivalent, parse_number
from rstar_pipeline.grading.extract import extract_boxed

__all__ = ["GradingConfig", "extract_boxed", "is_equivalent", "parse_number"]
