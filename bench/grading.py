"""Grading throughput: answers judged per second on the real benchmark answers, in one run.

  matches      every reference answer of the nine eval files, loaded as the evaluation loads them,
               against its \\boxed{} extraction (the common case when a model is right: decided by
               the string and number fast paths)
  mismatches   MATH500 answers, each against the next problem's answer (a wrong prediction: symbolic
               comparison in the worker process whenever either side is not a plain number)
  baseline     the same mismatches through math-verify called directly in this process (no
               normalisation, no worker, no time bound): what the worker's isolation costs

    .venv/bin/python bench/grading.py [--data ../shared/data/eval]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rstar_pipeline.evaluation import EvalConfig, load_benchmark
from rstar_pipeline.grading import extract_boxed, is_equivalent

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval"


def answers_of(item) -> list[str]:
    return [str(a) for a in (item["answer"] if isinstance(item["answer"], list) else [item["answer"]])]


def timed(pairs, judge) -> tuple[float, int]:
    start = time.perf_counter()
    matched = sum(bool(judge(pred, golds)) for pred, golds in pairs)
    return time.perf_counter() - start, matched


def direct_math_verify(prediction: str, answers: list[str]) -> bool:
    from math_verify import parse, verify

    pred = parse(f"${prediction}$")
    return any(verify(parse(f"${a}$"), pred) for a in answers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    benchmarks = [load_benchmark(str(p), EvalConfig())[1] for p in sorted(args.data.glob("*.json"))]
    matches = [(extract_boxed(f"The answer is $\\boxed{{{a}}}$."), list(p.answers))
               for problems in benchmarks for p in problems for a in p.answers]
    math500 = json.loads((args.data / "math500_test.json").read_text())
    mismatches = [(answers_of(item)[0], answers_of(math500[(i + 1) % len(math500)]))
                  for i, item in enumerate(math500)]
    is_equivalent("x+1", ["1+x"])  # start the worker (imports sympy) outside the timings
    direct_math_verify("x+1", ["1+x"])
    for name, pairs, judge in (("matches", matches, is_equivalent), ("mismatches", mismatches, is_equivalent),
                               ("baseline", mismatches, direct_math_verify)):
        seconds, matched = timed(pairs, judge)
        print(f"{name:<11} {len(pairs) / seconds:9.0f} answers/s  ({len(pairs)} answers, {matched} judged equal, "
              f"{seconds:.2f} s)")
        if name == "mismatches":
            worker_rate = len(pairs) / seconds
    print(f"mismatches / baseline: {worker_rate / (len(mismatches) / seconds):.2f}x")


if __name__ == "__main__":
    main()
