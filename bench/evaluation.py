"""A round's evaluation in one process against the MCTS methods in a worker process, in one run.

The round's policy and PPM evaluate the first `--problems` mini-world problems (MCTS on the first
`--mcts-problems`) with the evaluate preset's methods and budget, twice in this process: with
`processes: 1` (the baseline: every method in turn, torch's default thread count), then with
`processes: 2` (MCTS in a worker of one thread beside the rest). The first run also times each method
and the seconds it spends inside `generate` and the PPM's `score` (the rest is the sandbox and
bookkeeping). Prints the wall times, the ratio and whether both runs wrote the same rows; no thresholds.

    .venv/bin/python bench/evaluation.py --store warehouse/store --round 1 [--problems 200] [--mcts-problems 50]
"""

from __future__ import annotations

import argparse
import time
from contextlib import closing
from dataclasses import replace

import yaml

from rstar_pipeline.evaluation import EvalConfig, _evaluate, evaluate, load_benchmark
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
    config = EvalConfig(**{**cfg, "limit": args.problems, "mcts_limit": args.mcts_problems, "processes": 1},
                        generator=GeneratorConfig(backend="transformers", device="cpu", batch_size=64),
                        scorer=ScorerConfig(device="cpu"),
                        sandbox=SandboxConfig(isolation="strict", preload=("math", "fractions")))
    policy, ppm = (f"{args.store}/models/round_{args.round}/{m}" for m in ("policy", "ppm"))
    _, problems, _ = load_benchmark("miniworld", config)
    print(f"round {args.round} policy and PPM of {args.store}: {', '.join(config.methods)} on {len(problems)} problems, "
          f"MCTS on {args.mcts_problems} ({config.mcts_rollouts} rollouts x {config.mcts_samples} at {config.mcts_temperature})")
    generator, scorer = Timed(make_generator(config.generator, policy)), Timed(make_scorer(config.scorer, ppm))
    walls, rows = {}, {}
    with closing(make_sandbox(config.sandbox)) as sandbox:
        start = time.perf_counter()
        for method in config.methods:
            generator.seconds = scorer.seconds = 0.0
            at = time.perf_counter()
            rows[1, method] = evaluate(generator, scorer, problems, replace(config, methods=(method,)), sandbox).rows[method]
            print(f"  {method:<10} {time.perf_counter() - at:6.1f} s: generate {generator.seconds:6.1f} s, PPM "
                  f"{scorer.seconds:5.1f} s; pass {sum(r['correct'] for r in rows[1, method]) / len(rows[1, method]):.3f}",
                  flush=True)
        walls[1] = time.perf_counter() - start
        start = time.perf_counter()
        split = _evaluate(policy, ppm, generator.inner, scorer.inner, problems, replace(config, processes=2), sandbox)
        walls[2] = time.perf_counter() - start
    same = all(split.rows[m] == rows[1, m] for m in config.methods)
    print(f"processes 1: {walls[1]:.1f} s; processes 2: {walls[2]:.1f} s (worker start included); "
          f"{walls[1] / walls[2]:.2f}x faster; same rows: {same}")


if __name__ == "__main__":
    main()
