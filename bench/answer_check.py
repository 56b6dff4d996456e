"""Does setting aside answers that contradict their own program output lift best-of-N and MCTS?

The mini world's student mostly errs by boxing a value its program did not print (`<output>218.0`
answered `\\boxed{312.0}`). `answer_matches_output` (EvalConfig and SearchConfig) sets such answers
aside without ground truth. This runs a round's evaluation as the evaluate preset does (the round's
policy and PPM, 500 held-out problems, best-of-4 at 0.4, MCTS 4 x 4 at 0.4 on the first 100) with the
check off and on, in one process on the same samples (same seeds), and prints each method's accuracy,
greedy's beside them, the PPM's ranking of the samples and the share of samples set aside. No thresholds.

    .venv/bin/python bench/answer_check.py --store warehouse/store --round 4 [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from contextlib import closing
from dataclasses import replace

from rstar_pipeline.evaluation import EvalConfig, evaluate, load_benchmark
from rstar_pipeline.llm.config import GeneratorConfig, ScorerConfig, make_generator, make_scorer
from rstar_pipeline.sandbox import SandboxConfig, make_sandbox


def accuracy(rows: list[dict]) -> float:
    return round(sum(r["correct"] for r in rows) / len(rows), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a store with round `--round`'s policy and PPM")
    parser.add_argument("--round", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (the demo's: 1000 x its --seed)")
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--mcts-problems", type=int, default=100)
    args = parser.parse_args()

    models = f"{args.store}/models/round_{args.round}"
    config = EvalConfig(methods=("greedy", "best_of_n", "mcts"), miniworld_problems=args.problems, n=4,
                        temperature=0.4, max_tokens=256, mcts_limit=args.mcts_problems, mcts_rollouts=4,
                        mcts_samples=4, mcts_temperature=0.4, seed=args.seed)
    generator = make_generator(GeneratorConfig(backend="transformers", batch_size=64), f"{models}/policy")
    scorer = make_scorer(ScorerConfig(), f"{models}/ppm")
    _, problems, _ = load_benchmark("miniworld", config)
    print(f"round {args.round} of {args.store}: {len(problems)} held-out problems, MCTS on the first "
          f"{args.mcts_problems}")
    with closing(make_sandbox(SandboxConfig(preload=("math", "fractions")))) as sandbox:
        for check in (False, True):
            start = time.perf_counter()
            result = evaluate(generator, scorer, problems, replace(config, answer_matches_output=check), sandbox)
            greedy, mcts = result.rows["greedy"], result.rows["mcts"]
            figures = result.figures["best_of_n"]
            print(f"  answer check {'on ' if check else 'off'}: greedy {accuracy(greedy)} (first "
                  f"{args.mcts_problems}: {accuracy(greedy[:len(mcts)])})  best-of-4 {accuracy(result.rows['best_of_n'])}"
                  f"  mcts {accuracy(mcts)}  PPM on samples {figures['ppm_sample_pair_accuracy']:.3f}"
                  + (f"  samples set aside {figures['answer_mismatch_share']:.3f}" if check else "")
                  + f"  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
