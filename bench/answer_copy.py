"""Does the policy box the value its program printed? The mini student's largest error, measured.

For one round's policy, on the first `--problems` held-out problems of the evaluate preset (seed `--seed`):

  greedy         pass@1, and how many answers contradict the last <output> above them (`answer_matches_output`),
                 of which how many outputs were right (the program solved it; the answer lost it)
  resampled      for those contradictions, the answer step sampled `--samples` times at each `--temperature`:
                 the share of samples that box the printed value, and on how many problems any of them does
  copy by size   counterfactual outputs: every right greedy solution of the round policy with an integer output
                 gets a random value of 1, 2, 3 and 4 digits in place of its output, and the answer is written greedily
                 again; the share that boxes exactly the new value (copying, not solving: the code is unchanged)

No thresholds; it prints figures.

    .venv/bin/python bench/answer_copy.py --store warehouse/store --round 4 --seed 0
"""

from __future__ import annotations

import argparse
import random
import re
from contextlib import closing

from rstar_pipeline.evaluation import EvalConfig, load_benchmark
from rstar_pipeline.grading import is_equivalent
from rstar_pipeline.llm.base import SamplingConfig
from rstar_pipeline.llm.config import GeneratorConfig, make_generator
from rstar_pipeline.sandbox import SandboxConfig, make_sandbox
from rstar_pipeline.search.greedy import solve_greedy
from rstar_pipeline.steps import (ANSWER_END, OUTPUT, OUTPUT_END, answer_matches_output, extract_boxed,
                                  last_output, load_template)

SFT = load_template("sft")


def head(solution: str) -> str:
    """The solution up to and including its last output block: what the answer step is written after."""
    end = solution.rfind(OUTPUT_END)
    return solution[:end + len(OUTPUT_END)]


def answers(generator, questions: list[str], heads: list[str], sampling: SamplingConfig) -> list[list[str]]:
    outs = generator.generate([SFT.build(q, h) for q, h in zip(questions, heads)],
                              SamplingConfig(n=sampling.n, temperature=sampling.temperature, max_tokens=64,
                                             stop=(ANSWER_END,), seed=sampling.seed))
    return [[h + c.text for c in group] for h, group in zip(heads, outs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--round", type=int, default=4)
    parser.add_argument("--policy", help="another model to measure (e.g. a retrained policy): it writes the answers; "
                                         "the copy test's solutions stay the round policy's (default: the round policy)")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (the demo's: 1000 x its --seed)")
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--temperature", type=float, action="append", default=[])
    args = parser.parse_args()

    _, problems, _ = load_benchmark("miniworld", EvalConfig(miniworld_problems=500, limit=500, seed=args.seed))
    problems = problems[:args.problems]
    config = GeneratorConfig(backend="transformers", batch_size=64)
    round_policy = f"{args.store}/models/round_{args.round}/policy"
    policy = args.policy or round_policy
    generator = make_generator(config, policy)
    with closing(make_sandbox(SandboxConfig(preload=("math", "fractions")))) as sandbox:
        results = solve_greedy(problems, generator, sandbox, max_tokens=256)
        contexts = solve_greedy(problems, make_generator(config, round_policy), sandbox, max_tokens=256) \
            if args.policy else results
    wrong = [(p, r) for p, r in zip(problems, results) if not answer_matches_output(r.solution, r.prediction)]
    printed = [last_output(r.solution) for _, r in wrong]
    print(f"{policy}, {len(problems)} held-out problems: greedy "
          f"{sum(r.is_correct for r in results) / len(results):.3f}; {len(wrong)} answers contradict their output, "
          f"{sum(bool(o) and is_equivalent(o, p.answers) for (p, _), o in zip(wrong, printed))} of those "
          "outputs right")

    for temperature in args.temperature or [0.4, 1.0]:
        texts = answers(generator, [p.question for p, _ in wrong], [head(r.solution) for _, r in wrong],
                        SamplingConfig(n=args.samples, temperature=temperature, seed=1))
        agree = [[answer_matches_output(t, extract_boxed(t)) for t in group] for group in texts]
        share = sum(map(sum, agree)) / max(1, args.samples * len(agree))
        print(f"  resampled at {temperature}: {share:.3f} of samples "
              f"box the output; some sample does on {sum(map(any, agree))} of {len(agree)}")

    right = [(p, r) for p, r in zip(problems, contexts) if r.is_correct and re.search(
        re.escape(OUTPUT) + r"-?\d+" + re.escape(OUTPUT_END), r.solution)]
    rng = random.Random(args.seed)
    for digits in (1, 2, 3, 4):
        values = [str(rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10 ** digits - 1)) for _ in right]
        heads = [r.solution[:r.solution.rfind(OUTPUT)] + f"{OUTPUT}{v}{OUTPUT_END}" for (_, r), v in zip(right, values)]
        texts = answers(generator, [p.question for p, _ in right], heads, SamplingConfig(n=1, temperature=0.0))
        copied = sum(extract_boxed(t[0]) == v for t, v in zip(texts, values))
        print(f"  copy of a {digits}-digit output: {copied} of {len(right)} ({copied / max(1, len(right)):.3f})")


if __name__ == "__main__":
    main()
