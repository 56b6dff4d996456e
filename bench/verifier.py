"""Does a round's PPM tell right steps from wrong ones? Step-level ground truth on held-out problems.

MCTS can only beat greedy decoding if the PPM ranks sibling steps by whether they are right, and
best-of-N only if it ranks whole solutions. The mini world knows the value after every operation, so
both can be measured directly instead of against Monte-Carlo labels (which, with 4 rollouts, are
mostly noise for steps: `pairs_noise` below). On `--problems` held-out problems (the evaluation's
benchmark, never trained on) the round's policy samples `--n` solutions; every step prefix is run in
the sandbox and labelled right when its value equals the true value after that many operations.

  step pairs    same problem, same depth k, both prefixes right through step k-1: step k right vs
                wrong; a verifier is right when it scores the right one higher
  final pairs   same problem: a correct vs a wrong whole solution; best-of-N picks the top score

Verifiers: `ppm`, the round's PPM through the scorer the search loads; `policy_ll`, the policy's own
log-likelihood of the judged step (step pairs) or solution (final pairs), a reference point that
needs no training. `pairs_noise`: of the round's step pairs in the store, the share whose rejected
step is right, i.e. a label the PPM cannot learn from. No thresholds; it prints figures.

    .venv/bin/python bench/verifier.py --store warehouse/store --round 4
"""

from __future__ import annotations

import argparse
import itertools
import re
import time
from collections import defaultdict
from contextlib import closing

from rstar_pipeline.evaluation import EvalConfig, load_benchmark
from rstar_pipeline.llm.base import SamplingConfig
from rstar_pipeline.llm.hf import TransformersGenerator, TransformersScorer
from rstar_pipeline.miniworld.problems import read_question
from rstar_pipeline.sandbox import SandboxConfig, make_sandbox
from rstar_pipeline.search.greedy import solve_sampled
from rstar_pipeline.steps import CODE, CODE_END, STEP_END, load_template
from rstar_pipeline.warehouse.store import Warehouse
from rstar_pipeline.warehouse.views import query

ASSIGNED = re.compile(r"^\s*([A-Za-z_]\w*)\s*=", re.M)


def true_values(question: str) -> list[int]:
    """The value after each operation: [start, after op 1, ...]."""
    q = read_question(question)
    values = [q.start]
    for op in q.ops:
        values.append(op.apply(values[-1]))
    return values


def step_prefixes(solution: str) -> list[str]:
    """The solution cut after each intermediate step (each `<end_of_step>`)."""
    cuts = [m.end() for m in re.finditer(re.escape(STEP_END), solution)]
    return [solution[:c] for c in cuts]


def prefix_program(prefix: str) -> str | None:
    """The prefix's code plus a print of the variable its last step assigned (a failing program when
    nothing is assigned: such a prefix is never right)."""
    code = prefix.split(CODE, 1)[-1].replace(STEP_END, "").replace(CODE_END, "")
    names = ASSIGNED.findall(code)
    return f"{code}\nprint({names[-1]})" if names else "raise SystemExit(1)"


def label_steps(problems, groups, sandbox) -> list[list[list[bool]]]:
    """Per problem, per sample: is the solution right through step k, for each intermediate step k."""
    jobs, where = [], []
    for i, group in enumerate(groups):
        for j, sample in enumerate(group):
            for k, prefix in enumerate(step_prefixes(sample.solution)):
                jobs.append(prefix_program(prefix))
                where.append((i, j, k))
    outputs = sandbox.run(jobs)
    labels = [[[False] * len(step_prefixes(s.solution)) for s in group] for group in groups]
    for (i, j, k), out in zip(where, outputs):
        values = true_values(problems[i].question)
        ok = k < len(values) and _printed(out) == str(values[k])
        labels[i][j][k] = ok and (k == 0 or labels[i][j][k - 1])
    return labels


def _printed(result) -> str | None:
    """The last line a program printed (a last code step prints the answer before our print)."""
    lines = result.stdout.strip().splitlines() if result.ok else []
    return lines[-1].strip() if lines else None


class PolicyLikelihood:
    """Sum of the policy's log-probabilities of `completion` after `prompt`."""

    def __init__(self, path: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch, self.tokenizer = torch, AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).eval()

    def __call__(self, prompt: str, completion: str) -> float:
        torch = self.torch
        p = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = self.tokenizer(completion, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p + c])
        with torch.inference_mode():
            logp = self.model(ids).logits[0, :-1].float().log_softmax(-1)
        return float(logp.gather(1, ids[0, 1:, None])[-len(c):].sum())


def pair_accuracy(pairs: list[tuple[float, float]]) -> float | None:
    return round(sum(a > b for a, b in pairs) / len(pairs), 3) if pairs else None


def step_pairs(groups, labels, score) -> list[tuple[float, float]]:
    """(score of a right step k, score of a wrong step k) for prefixes right through step k-1."""
    out = []
    for i, group in enumerate(groups):
        by_depth = defaultdict(lambda: ([], []))
        for j, sample in enumerate(group):
            prefixes = step_prefixes(sample.solution)
            for k, right in enumerate(labels[i][j]):  # up to the first wrong step: the earlier ones are right
                by_depth[k][0 if right else 1].append(score(i, prefixes, k))
                if not right:
                    break
        for good, bad in by_depth.values():
            out += list(itertools.product(good, bad))
    return out


def final_figures(groups, scores) -> dict:
    """Pair accuracy on (correct, wrong) solutions of a problem and best-of-N by the score."""
    pairs, best = [], 0
    for group, mine in zip(groups, scores):
        pairs += [(mine[a], mine[b]) for a, b in itertools.product(range(len(group)), repeat=2)
                  if group[a].is_correct and not group[b].is_correct]
        best += group[max(range(len(group)), key=lambda k: mine[k])].is_correct
    return {"final_pair_acc": pair_accuracy(pairs), "final_pairs": len(pairs), "best_of_n": round(best / len(groups), 3)}


def pairs_noise(store: Warehouse, round: int, sandbox) -> dict:
    """Of the round's step pairs: how many have a right chosen step, and how many a right rejected one."""
    template = load_template("sft")
    rows = query(store, "SELECT prompt, chosen, rejected FROM preference_pairs WHERE round = $r AND kind = 'step'",
                 {"r": round}).to_pylist()
    checked = {"pairs": len(rows), "chosen_right": 0, "rejected_right": 0}
    jobs = []
    for row in rows:
        question, partial = template.split(row["prompt"])
        depth = len(step_prefixes(partial))
        values = true_values(question)
        for side in ("chosen", "rejected"):
            jobs.append((side, prefix_program(partial + row[side]), values[depth] if depth < len(values) else None))
    results = sandbox.run([code for _, code, _ in jobs])
    for (side, _, want), out in zip(jobs, results):
        checked[f"{side}_right"] += int(want is not None and _printed(out) == str(want))
    return checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a store with round `--round`'s policy and PPM")
    parser.add_argument("--round", type=int, default=4)
    parser.add_argument("--problems", type=int, default=200, help="held-out problems (the last of the 500)")
    parser.add_argument("--n", type=int, default=4, help="samples per problem")
    parser.add_argument("--temperature", type=float, default=0.7)
    args = parser.parse_args()

    store = Warehouse(args.store)
    models = store.root / "models" / f"round_{args.round}"
    _, problems, _ = load_benchmark("miniworld", EvalConfig(miniworld_problems=500, limit=500))
    problems = problems[-args.problems:]
    template = load_template("sft")
    generator = TransformersGenerator(str(models / "policy"), device="cpu", batch_size=64)
    with closing(make_sandbox(SandboxConfig(preload=("math", "fractions")))) as sandbox:
        start = time.perf_counter()
        groups = solve_sampled(problems, generator, sandbox, SamplingConfig(
            n=args.n, temperature=args.temperature, max_tokens=256, seed=1))
        labels = label_steps(problems, groups, sandbox)
        noise = pairs_noise(store, args.round, sandbox)
    print(f"round {args.round}: {len(problems)} held-out problems x {args.n} samples at T {args.temperature} "
          f"({time.perf_counter() - start:.0f} s to sample and label)")
    flat = [s for g in groups for s in g]
    print(f"  samples correct {sum(s.is_correct for s in flat) / len(flat):.3f}  pass@{args.n} "
          f"{sum(any(s.is_correct for s in g) for g in groups) / len(groups):.3f}  first sample "
          f"{sum(g[0].is_correct for g in groups) / len(groups):.3f}")
    print(f"  the round's step pairs: {noise['pairs']}, chosen step right {noise['chosen_right']}, "
          f"rejected step right {noise['rejected_right']} (a label no verifier can learn)")

    ppm = TransformersScorer(str(models / "ppm"), device="cpu")
    ll = PolicyLikelihood(str(models / "policy"))
    prompts = [template.build(p.question) for p in problems]
    ppm_step = lambda i, prefixes, k: ppm.score([prompts[i] + prefixes[k]])[0]
    ll_step = lambda i, prefixes, k: ll(prompts[i] + (prefixes[k - 1] if k else ""),
                                        prefixes[k][len(prefixes[k - 1]) if k else 0:])
    ppm_final = ppm.score([pr + s.solution for pr, g in zip(prompts, groups) for s in g])
    ppm_final = [ppm_final[k * args.n:(k + 1) * args.n] for k in range(len(groups))]
    ll_final = [[ll(pr, s.solution) for s in g] for pr, g in zip(prompts, groups)]
    for name, step_score, final in (("ppm", ppm_step, ppm_final), ("policy_ll", ll_step, ll_final)):
        pairs = step_pairs(groups, labels, step_score)
        print(f"  {name:10s} step pair acc {pair_accuracy(pairs)} (n {len(pairs)})  "
              + "  ".join(f"{k} {v}" for k, v in final_figures(groups, final).items()))


if __name__ == "__main__":
    main()
