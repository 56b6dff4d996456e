"""Does a round's PPM tell right steps from wrong ones? Step-level ground truth on held-out problems.

MCTS can only beat greedy decoding if the PPM ranks sibling steps by whether they are right, and
best-of-N only if it ranks whole solutions. The mini world knows the value after every operation, so
both can be measured directly instead of against Monte-Carlo labels (which, with 4 rollouts, are
mostly noise for steps: see below). On `--problems` held-out problems (the evaluation's
benchmark, never trained on) the round's policy samples `--n` solutions; every step prefix is run in
the sandbox and labelled right when its value equals the true value after that many operations.

  step pairs    same problem, same depth k, both prefixes right through step k-1: step k right vs
                wrong; a verifier is right when it scores the right one higher
  final pairs   same problem: a correct vs a wrong whole solution; best-of-N picks the top score

Verifiers: `ppm`, the round's PPM through the scorer the search loads; `policy_ll`, the policy's own
log-likelihood of the judged step (step pairs) or solution (final pairs), a reference point that
needs no training; `--ppm DIR` adds any other PPM; `--oracle-problems N` adds `oracle_ppm`, a PPM
trained like the round's (same start, same config) but on pairs labelled by ground truth (the
policy's samples of N level 3+ problems of the store, step and final pairs built as above): it says
whether clean labels are what the PPM lacks. `--likelihood-reward STEPS` adds `ll_reward`: the round's
policy fine-tuned with the PPM's Bradley-Terry loss on the round's pairs (all rounds so far, as the
preset), its reward being the summed log-likelihood of the judged step or solution instead of a value
head: it says whether a verifier that keeps what the policy's likelihood knows ranks unseen samples better.
`--likelihood-oracle` adds `ll_oracle`: the same, trained on the round's pairs plus the ground-truth pairs of
`--oracle-problems` (the policy's own samples of training problems): on-policy pairs for the likelihood reward.

The round's own step pairs (Monte-Carlo labels from the search): how many have a right chosen and a
right rejected step (a label no verifier can learn); with `--completions M`, M sampled completions
after each side, and how often they reach the answer from a right and from a wrong step: what extra
rollouts per node would buy as a label. No thresholds; it prints figures.

    .venv/bin/python bench/verifier.py --store warehouse/store --round 4
    .venv/bin/python bench/verifier.py --store warehouse/store --round 4 --completions 4 --oracle-problems 400
    .venv/bin/python bench/verifier.py --store warehouse/store --round 4 --likelihood-reward 60
    .venv/bin/python bench/verifier.py --store warehouse/store --round 4 --problems 500 --oracle-problems 1200 \
        --oracle-temperature 0.7 --likelihood-reward 160 --likelihood-lr 2e-4 --likelihood-oracle
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
from rstar_pipeline.problemsets import Problem
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


def completion_logprob(model, tokenizer, items: list[tuple[str, str]]):
    """Summed log-probability of each completion after its prompt, one right-padded batch (keeps the graph)."""
    import torch

    seqs = [(tokenizer(p, add_special_tokens=False)["input_ids"], tokenizer(c, add_special_tokens=False)["input_ids"])
            for p, c in items]
    width = max(len(p) + len(c) for p, c in seqs)
    ids, mask, judged = (torch.zeros((len(seqs), width), dtype=torch.long) for _ in range(3))
    for k, (p, c) in enumerate(seqs):
        ids[k, :len(p) + len(c)] = torch.tensor(p + c)
        mask[k, :len(p) + len(c)] = 1
        judged[k, len(p) - 1:len(p) + len(c) - 1] = 1  # positions that predict the completion's tokens
    logp = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float().log_softmax(-1)
    return (logp.gather(2, ids[:, 1:, None])[..., 0] * judged[:, :-1]).sum(1)


def train_likelihood_reward(store: Warehouse, round: int, steps: int, lr: float, extra: list[dict],
                            batch: int = 16) -> str:
    """The round's policy trained with the Bradley-Terry loss on its summed log-likelihood of chosen vs
    rejected (cosine lr, clipped gradients), on the round's pairs and `extra` ones; returns its folder."""
    import random

    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rstar_pipeline.checkpoints import pair_rows

    policy = str(store.root / "models" / f"round_{round}" / "policy")
    tokenizer, model = AutoTokenizer.from_pretrained(policy), AutoModelForCausalLM.from_pretrained(policy)
    pairs = pair_rows(store, round, previous_rounds=True) + extra
    random.Random(0).shuffle(pairs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    start = time.perf_counter()
    for step in range(steps):
        rows = [pairs[(step * batch + k) % len(pairs)] for k in range(batch)]
        reward = completion_logprob(model, tokenizer, [(r["prompt"], r[side]) for side in ("chosen", "rejected")
                                                       for r in rows])
        loss = -F.logsigmoid(reward[:batch] - reward[batch:]).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
    out = store.root / "bench" / f"ll_reward{'_oracle' if extra else ''}_round_{round}"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(f"  {out.name}: {len(pairs)} pairs, {steps} steps of {batch} at lr {lr}, last loss {loss.item():.3f}, "
          f"{time.perf_counter() - start:.0f} s -> {out}")
    return str(out)


class PolicyLikelihood:
    """Sum of a causal LM's log-probabilities of `completion` after `prompt`."""

    def __init__(self, path: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch, self.tokenizer = torch, AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).eval()

    def __call__(self, prompt: str, completion: str) -> float:
        with self.torch.inference_mode():
            return float(completion_logprob(self.model, self.tokenizer, [(prompt, completion)])[0])


def pair_accuracy(pairs: list[tuple[float, float]]) -> float | None:
    return round(sum(a > b for a, b in pairs) / len(pairs), 3) if pairs else None


def steps_by_depth(group, labels) -> dict[int, tuple[list, list]]:
    """Per depth k, the step prefixes of the samples right through step k-1: (step k right, step k wrong)."""
    by_depth = defaultdict(lambda: ([], []))
    for sample, rights in zip(group, labels):
        prefixes = step_prefixes(sample.solution)
        for k, right in enumerate(rights):  # up to the first wrong step: the earlier ones are right
            by_depth[k][0 if right else 1].append(prefixes)
            if not right:
                break
    return by_depth


def step_pairs(groups, labels, score) -> list[tuple[float, float]]:
    """(score of a right step k, score of a wrong step k) for prefixes right through step k-1."""
    out = []
    for i, group in enumerate(groups):
        for k, (good, bad) in steps_by_depth(group, labels[i]).items():
            out += list(itertools.product([score(i, p, k) for p in good], [score(i, p, k) for p in bad]))
    return out


def final_figures(groups, scores) -> dict:
    """Pair accuracy on (correct, wrong) solutions of a problem and best-of-N by the score."""
    pairs, best = [], 0
    for group, mine in zip(groups, scores):
        pairs += [(mine[a], mine[b]) for a, b in itertools.product(range(len(group)), repeat=2)
                  if group[a].is_correct and not group[b].is_correct]
        best += group[max(range(len(group)), key=lambda k: mine[k])].is_correct
    return {"final_pair_acc": pair_accuracy(pairs), "final_pairs": len(pairs), "best_of_n": round(best / len(groups), 3)}


def round_step_pairs(store: Warehouse, round: int, sandbox) -> tuple[list[dict], list[tuple[bool, bool]]]:
    """The round's step pairs and, for each, whether its chosen and its rejected step are right."""
    template = load_template("sft")
    rows = query(store, "SELECT p.prompt, p.chosen, p.rejected, q.answers FROM preference_pairs p JOIN problems q "
                        "USING (problem_id) WHERE p.round = $r AND kind = 'step' ORDER BY ALL", {"r": round}).to_pylist()
    jobs, wanted = [], []
    for row in rows:
        question, partial = template.split(row["prompt"])
        depth, values = len(step_prefixes(partial)), true_values(question)
        for side in ("chosen", "rejected"):
            jobs.append(prefix_program(partial + row[side]))
            wanted.append(str(values[depth]) if depth < len(values) else None)
    right = [want is not None and _printed(out) == want for out, want in zip(sandbox.run(jobs), wanted)]
    return rows, list(zip(right[::2], right[1::2]))


def completion_wins(rows: list[dict], generator, sandbox, m: int, temperature: float) -> list[tuple[int, int]]:
    """For each pair, how many of `m` sampled completions after its chosen and after its rejected step reach a
    correct answer: the extra rollouts a cleaner label would cost."""
    template = load_template("sft")
    starts = [template.split(row["prompt"] + row[side]) for row in rows for side in ("chosen", "rejected")]
    problems = [Problem(str(k), "pairs", "train", question, tuple(rows[k // 2]["answers"]))
                for k, (question, _) in enumerate(starts)]
    groups = solve_sampled(problems, generator, sandbox, SamplingConfig(
        n=m, temperature=temperature, max_tokens=256, seed=3), partials=[partial for _, partial in starts])
    wins = [sum(s.is_correct for s in g) for g in groups]
    return list(zip(wins[::2], wins[1::2]))


def print_pair_labels(truth: list[tuple[bool, bool]], wins: list[tuple[int, int]] | None, m: int) -> None:
    print(f"  the round's step pairs: {len(truth)}, chosen step right {sum(c for c, _ in truth)}, rejected step "
          f"right {sum(r for _, r in truth)} (a label no verifier can learn)")
    if not wins:
        return
    for side, name in enumerate(("chosen", "rejected")):
        for right in (True, False):
            mine = [w[side] for t, w in zip(truth, wins) if t[side] == right]
            if mine:
                print(f"    {name} step {'right' if right else 'wrong'} ({len(mine)}): of {m} completions "
                      f"{sum(mine) / (m * len(mine)):.3f} correct, at least one correct in {sum(w > 0 for w in mine) / len(mine):.3f}")
    kept = [t for t, w in zip(truth, wins) if w[1] == 0]
    print(f"    pairs whose rejected step has no correct completion: {len(kept)}, rejected step right in "
          f"{sum(r for _, r in kept)}")


def oracle_pairs(problems, groups, labels, template) -> list[dict]:
    """Pair rows for `train_ppm` labelled by ground truth: every right vs wrong step k of prefixes right
    through k-1 (each side its whole prefix), and every correct vs wrong solution, per problem."""
    rows = []
    for problem, group, mine in zip(problems, groups, labels):
        steps = [({p[k] for p in good}, {p[k] for p in bad}) for k, (good, bad) in steps_by_depth(group, mine).items()]
        finals = ({s.solution for s in group if s.is_correct}, {s.solution for s in group if not s.is_correct})
        for kind, (good, bad) in [*(("step", sides) for sides in steps), ("final", finals)]:
            rows += [{"problem_id": problem.problem_id, "kind": kind, "prompt": template.build(problem.question),
                      "chosen": g, "rejected": b, "weight": 1.0} for g, b in itertools.product(sorted(good), sorted(bad))]
    return rows


def ground_truth_pairs(store: Warehouse, generator, sandbox, args) -> list[dict]:
    """`oracle_pairs` of the policy's samples of `--oracle-problems` level 3+ problems of the store."""
    rows = query(store, "SELECT problem_id, source, split, question, answers, level FROM problems WHERE level >= 3 "
                        "ORDER BY problem_id LIMIT $n", {"n": args.oracle_problems}).to_pylist()
    problems = [Problem(**{**r, "answers": tuple(r["answers"])}) for r in rows]
    groups = solve_sampled(problems, generator, sandbox, SamplingConfig(
        n=args.n, temperature=args.oracle_temperature, max_tokens=256, seed=2))
    pairs = oracle_pairs(problems, groups, label_steps(problems, groups, sandbox), load_template("sft"))
    print(f"  ground-truth pairs: {len(problems)} problems, {sum(p['kind'] == 'step' for p in pairs)} step and "
          f"{sum(p['kind'] == 'final' for p in pairs)} final pairs")
    return pairs


def train_oracle_ppm(store: Warehouse, round: int, pairs: list[dict]) -> str:
    """A PPM trained like the round's (same start, same config) on ground-truth pairs; returns its folder."""
    from dataclasses import fields

    from rstar_pipeline.checkpoints import read
    from rstar_pipeline.training.ppm import PPMTrainingConfig, train_ppm

    recorded = read(store, round, "ppm").config
    config = PPMTrainingConfig(**{f.name: recorded[f.name] for f in fields(PPMTrainingConfig) if f.name in recorded})
    out = store.root / "bench" / f"oracle_ppm_round_{round}"
    metrics = train_ppm(str(store.root / "models" / f"round_{round}" / "policy"), pairs, out, config)
    print(f"  oracle_ppm: {metrics['steps']} steps, {metrics['train_s']} s -> {out}")
    return str(out)


def ppm_scores(path: str, prompts: list[str], groups):
    """A PPM's step score function and its scores of the whole solutions (per problem)."""
    ppm = TransformersScorer(path, device="cpu")
    final = ppm.score([pr + s.solution for pr, g in zip(prompts, groups) for s in g])
    widths = [len(g) for g in groups]
    starts = list(itertools.accumulate([0] + widths))
    return (lambda i, prefixes, k: ppm.score([prompts[i] + prefixes[k]])[0],
            [final[a:a + w] for a, w in zip(starts, widths)])


def likelihood_scores(ll: PolicyLikelihood, prompts: list[str], groups):
    """A causal LM's step score function (the log-likelihood of step k after the prefix before it) and its
    scores of the whole solutions (per problem)."""
    step = lambda i, prefixes, k: ll(prompts[i] + (prefixes[k - 1] if k else ""),
                                     prefixes[k][len(prefixes[k - 1]) if k else 0:])
    return step, [[ll(pr, s.solution) for s in g] for pr, g in zip(prompts, groups)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a store with round `--round`'s policy and PPM")
    parser.add_argument("--round", type=int, default=4)
    parser.add_argument("--problems", type=int, default=200, help="held-out problems (the last of the 500)")
    parser.add_argument("--n", type=int, default=4, help="samples per problem")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--completions", type=int, default=0,
                        help="per side of each of the round's step pairs, sample this many completions (0: off)")
    parser.add_argument("--oracle-problems", type=int, default=0,
                        help="train oracle_ppm on ground-truth pairs of this many of the store's problems (0: off)")
    parser.add_argument("--oracle-temperature", type=float, default=1.0, help="sampling temperature of its data")
    parser.add_argument("--likelihood-reward", type=int, default=0, metavar="STEPS",
                        help="train ll_reward for this many steps of 16 pairs (0: off)")
    parser.add_argument("--likelihood-lr", type=float, default=3e-4, help="its peak learning rate")
    parser.add_argument("--likelihood-oracle", action="store_true",
                        help="also train ll_oracle: ll_reward on the round's pairs plus the ground-truth pairs of "
                             "--oracle-problems (the policy's own samples of training problems)")
    parser.add_argument("--ppm", action="append", default=[],
                        help="another PPM folder to measure beside the round's (repeatable)")
    args = parser.parse_args()
    if args.likelihood_oracle and not (args.oracle_problems and args.likelihood_reward):
        parser.error("--likelihood-oracle needs --oracle-problems and --likelihood-reward")

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
        pair_rows, truth = round_step_pairs(store, args.round, sandbox)
        wins = completion_wins(pair_rows, generator, sandbox, args.completions, 1.0) if args.completions else None
        ppms = [("ppm", str(models / "ppm")), *((path, path) for path in args.ppm)]
        truth_pairs = ground_truth_pairs(store, generator, sandbox, args) if args.oracle_problems else []
        if truth_pairs:
            ppms.append(("oracle_ppm", train_oracle_ppm(store, args.round, truth_pairs)))
    print(f"round {args.round}: {len(problems)} held-out problems x {args.n} samples at T {args.temperature} "
          f"({time.perf_counter() - start:.0f} s to sample and label)")
    flat = [s for g in groups for s in g]
    print(f"  samples correct {sum(s.is_correct for s in flat) / len(flat):.3f}  pass@{args.n} "
          f"{sum(any(s.is_correct for s in g) for g in groups) / len(groups):.3f}  first sample "
          f"{sum(g[0].is_correct for g in groups) / len(groups):.3f}")
    print_pair_labels(truth, wins, args.completions)

    prompts = [template.build(p.question) for p in problems]
    verifiers = [(name, *ppm_scores(path, prompts, groups)) for name, path in ppms]
    lms = [("policy_ll", str(models / "policy"))]
    if args.likelihood_reward:
        lms.append(("ll_reward", train_likelihood_reward(store, args.round, args.likelihood_reward, args.likelihood_lr,
                                                         [])))
    if args.likelihood_oracle:
        lms.append(("ll_oracle", train_likelihood_reward(store, args.round, args.likelihood_reward, args.likelihood_lr,
                                                         truth_pairs)))
    for name, path in lms:
        verifiers.append((name, *likelihood_scores(PolicyLikelihood(path), prompts, groups)))
    for name, step_score, final in verifiers:
        pairs = step_pairs(groups, labels, step_score)
        print(f"  {name:10s} step pair acc {pair_accuracy(pairs)} (n {len(pairs)})  "
              + "  ".join(f"{k} {v}" for k, v in final_figures(groups, final).items()))


if __name__ == "__main__":
    main()
