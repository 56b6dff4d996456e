"""Which answer should an MCTS run give, and how many right answers does its tree hold at all?

For one round's policy and PPM, on the first `--problems` held-out problems of the evaluate preset
(seed `--seed`), runs the evaluation's MCTS (`mcts_answer_nodes`, with the answer check) at each
`--budget ROLLOUTS:TEMPERATURE[:SAMPLES]` (samples per expansion, 4 by default), in one process, and
prints per budget: the answer `mcts_pick: q` gives (the highest Q, as the paper), the one
`mcts_pick: vote` gives, the share of problems where some answer node that the check keeps is right
(what a perfect pick would reach), answer nodes per problem and seconds; greedy decoding on the same
problems is the baseline. No thresholds.

    .venv/bin/python bench/mcts_pick.py --store warehouse/store --round 4 --seed 0 --budget 4:0.4 --budget 8:0.7
"""

from __future__ import annotations

import argparse
import time
from contextlib import closing
from dataclasses import replace

from rstar_pipeline.evaluation import EvalConfig, load_benchmark, mcts_answer_nodes, picked_answer
from rstar_pipeline.grading import is_equivalent
from rstar_pipeline.llm.config import GeneratorConfig, ScorerConfig, make_generator, make_scorer
from rstar_pipeline.sandbox import SandboxConfig, make_sandbox
from rstar_pipeline.search.greedy import solve_greedy


def share(flags) -> float:
    flags = list(flags)
    return round(sum(flags) / len(flags), 3)


def right(node, problem) -> bool:
    return node is not None and is_equivalent(node.final_answer, problem.answers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a store with round `--round`'s policy and PPM")
    parser.add_argument("--round", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (the demo's: 1000 x its --seed)")
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--budget", action="append", default=[], metavar="ROLLOUTS:TEMPERATURE[:SAMPLES]",
                        help="an MCTS budget to measure (repeatable; default 4:0.4, the evaluate preset's)")
    args = parser.parse_args()

    models = f"{args.store}/models/round_{args.round}"
    config = EvalConfig(methods=("mcts",), miniworld_problems=500, limit=500, max_tokens=256, mcts_samples=4,
                        answer_matches_output=True, seed=args.seed)
    _, problems, _ = load_benchmark("miniworld", config)
    problems = problems[:args.problems]
    generator = make_generator(GeneratorConfig(backend="transformers", batch_size=64), f"{models}/policy")
    scorer = make_scorer(ScorerConfig(), f"{models}/ppm")
    with closing(make_sandbox(SandboxConfig(preload=("math", "fractions")))) as sandbox:
        greedy = solve_greedy(problems, generator, sandbox, max_tokens=config.max_tokens)
        print(f"round {args.round} of {args.store}, first {len(problems)} held-out problems: greedy "
              f"{share(r.is_correct for r in greedy)}", flush=True)
        for budget in args.budget or ["4:0.4"]:
            rollouts, temperature, samples = (budget + ":4").split(":")[:3]
            start = time.perf_counter()
            trees = mcts_answer_nodes(problems, generator, scorer, sandbox, replace(
                config, mcts_rollouts=int(rollouts), mcts_temperature=float(temperature), mcts_samples=int(samples)),
                args.seed)
            picks = {pick: [right(picked_answer(nodes, pick) if nodes else None, p)
                            for nodes, p in zip(trees, problems)] for pick in ("q", "vote")}
            ceiling = [any(right(n, p) for n in nodes if n.is_correct is not False)
                       for nodes, p in zip(trees, problems)]
            print(f"  {rollouts} rollouts x {samples} samples at {temperature}: pick q {share(picks['q'])}"
                  f"  vote {share(picks['vote'])}  some kept answer right {share(ceiling)}  answer nodes/problem "
                  f"{sum(map(len, trees)) / len(trees):.1f}  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
