"""Where a round's evaluation spends its time: per method, inside `generate`, the PPM's `score` and the rest.

The round's policy and PPM evaluate the first `--problems` mini-world problems (MCTS on the first
`--mcts-problems`) with the evaluate preset's methods and budget, one method at a time, in this process.
Prints per method the wall seconds, the seconds inside `generate` and inside `score` (the rest is the
sandbox and bookkeeping) and the pass rate. Then MCTS again with the scorer scoring every text whole
(`share_prefixes` off, the baseline) against its shared starts (on: a node's children run the question
and steps so far once): PPM seconds, the ratio, and whether the rows agree. No thresholds. (Running the MCTS methods in a worker process
beside the others was measured this way and was slower, 0.91x: MCTS uses two torch threads well.)

    .venv/bin/python bench/evaluation.py --store warehouse/store --round 1 [--problems 200] [--mcts-problems 50]
"""

from __future__ import annotations

import argparse
import time
from contextlib import closing
from dataclasses import replace

import yaml

from rstar_pipeline.evaluation import EvalConfig, evaluate, load_benchmark
from rstar_pipeline.llm.config import GeneratorConfig, ScorerConfig, make_generator, make_scorer
from rstar_pipeline.paths import CONFIGS_DIR
from rstar_pipeline.sandbox import SandboxConfig, make_sandbox


class Timed:
    """A generator or scorer that adds up the seconds spent in its `generate` or `score`."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, 0.0

    def _timed(self, method: str, *args):
        start = time.perf_counter()
        try:
            return getattr(self.inner, method)(*args)
        finally:
            self.seconds += time.perf_counter() - start

    def generate(self, *args):
        return self._timed("generate", *args)

    def score(self, *args):
        return self._timed("score", *args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--round", type=int, default=1)
    parser.add_argument("--problems", type=int, default=200, help="greedy and best_of_n problems")
    parser.add_argument("--mcts-problems", type=int, default=50)
    args = parser.parse_args()

    preset = yaml.safe_load((CONFIGS_DIR / "evaluate.yaml").read_text())["ops"][f"round_{args.round}__eval"]["config"]
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in preset.items() if k not in ("generator", "scorer")}
    config = EvalConfig(**{**cfg, "limit": args.problems, "mcts_limit": args.mcts_problems},
                        generator=GeneratorConfig(backend="transformers", device="cpu", batch_size=64),
                        scorer=ScorerConfig(device="cpu"),
                        sandbox=SandboxConfig(isolation="strict", preload=("math", "fractions")))
    policy, ppm = (f"{args.store}/models/round_{args.round}/{m}" for m in ("policy", "ppm"))
    _, problems, _ = load_benchmark("miniworld", config)
    print(f"round {args.round} policy and PPM of {args.store}: {', '.join(config.methods)} on {len(problems)} problems, "
          f"MCTS on {args.mcts_problems} ({config.mcts_rollouts} rollouts x {config.mcts_samples} at {config.mcts_temperature})")
    generator, scorer = Timed(make_generator(config.generator, policy)), Timed(make_scorer(config.scorer, ppm))
    with closing(make_sandbox(config.sandbox)) as sandbox:
        for method in config.methods:
            generator.seconds = scorer.seconds = 0.0
            start = time.perf_counter()
            rows = evaluate(generator, scorer, problems, replace(config, methods=(method,)), sandbox).rows[method]
            print(f"  {method:<10} {time.perf_counter() - start:6.1f} s: generate {generator.seconds:6.1f} s, PPM "
                  f"{scorer.seconds:5.1f} s; pass {sum(r['correct'] for r in rows) / len(rows):.3f}", flush=True)
        mcts, seconds = {}, {}
        for share in (False, True):
            scorer.inner.share_prefixes, scorer.seconds = share, 0.0
            mcts[share] = evaluate(generator, scorer, problems, replace(config, methods=("mcts",)), sandbox).rows["mcts"]
            seconds[share] = scorer.seconds
    passed = {k: sum(r["correct"] for r in v) for k, v in mcts.items()}
    print(f"mcts PPM scoring: whole texts {seconds[False]:.1f} s, shared starts {seconds[True]:.1f} s, "
          f"{seconds[False] / seconds[True]:.2f}x faster; solved {passed[False]} vs {passed[True]}, "
          f"{sum(a != b for a, b in zip(mcts[False], mcts[True]))} of {len(mcts[True])} rows differ "
          f"(float rounding reorders near-equal children)")


if __name__ == "__main__":
    main()
