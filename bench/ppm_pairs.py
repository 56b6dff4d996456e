"""How well a round's PPM, and the round's policy's own likelihood, rank the PPM's held-out pairs.

The held-out pairs are the ones the round's PPM training set aside: `split_by_problem` over the pairs it
trained on (rounds <= r with `include_previous_rounds`), with the eval_fraction and seed recorded in its
checkpoint, so the `ppm` figure is the demo's "PPM pair acc." again. Verifiers:

  ppm          the round's PPM through the scorer the search loads
  policy_sum   the round's policy: summed log-probability of the chosen vs the rejected completion
  policy_mean  the same per completion token (long and short solutions on one scale)

Each: accuracy on all held-out pairs, on final (whole-solution) and step pairs, and on this round's own
pairs. A likelihood that ranks the pairs better than the trained PPM says what a verifier built on the
policy's language model (an implicit reward) could reach. No thresholds; it prints figures.

    .venv/bin/python bench/ppm_pairs.py --store warehouse/store --round 4
"""

from __future__ import annotations

import argparse

from verifier import completion_logprob

from rstar_pipeline import checkpoints
from rstar_pipeline.training.sft import split_by_problem
from rstar_pipeline.warehouse.store import Warehouse
from rstar_pipeline.warehouse.views import query


def policy_logprobs(path: str, items: list[tuple[str, str]], batch: int = 32) -> list[tuple[float, int]]:
    """(summed log-probability, completion tokens) of each completion after its prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            sums = completion_logprob(model, tokenizer, chunk).tolist()
            out += [(s, len(tokenizer(c, add_special_tokens=False)["input_ids"])) for s, (_, c) in zip(sums, chunk)]
    return out


def accuracy(pairs: list[dict], scores: list[tuple[float, float]], keep) -> str:
    mine = [(c, r) for p, (c, r) in zip(pairs, scores) if keep(p)]
    return f"{sum(c > r for c, r in mine) / len(mine):.3f} ({len(mine)})" if mine else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--round", type=int, required=True)
    args = parser.parse_args()

    store = Warehouse(args.store)
    ppm, policy = (checkpoints.read(store, args.round, kind) for kind in ("ppm", "policy"))
    config = ppm.metrics["config"]
    rounds = "round <= $r" if config["include_previous_rounds"] else "round = $r"
    rows = query(store, f"SELECT round, problem_id, kind, prompt, chosen, rejected FROM preference_pairs WHERE {rounds}",
                 {"r": args.round}).to_pylist()  # the rows of checkpoints.pair_rows, with their round
    _, held = split_by_problem(rows, config["eval_fraction"], config["seed"])

    from rstar_pipeline.llm.hf import TransformersScorer

    scorer = TransformersScorer(ppm.path, device="cpu")
    raw_c, raw_r = scorer.raw([p["prompt"] + p["chosen"] for p in held]), scorer.raw([p["prompt"] + p["rejected"] for p in held])
    lp = policy_logprobs(policy.path, [(p["prompt"], p[side]) for p in held for side in ("chosen", "rejected")])
    verifiers = {"ppm": list(zip(raw_c.tolist(), raw_r.tolist())),
                 "policy_sum": [(lp[2 * k][0], lp[2 * k + 1][0]) for k in range(len(held))],
                 "policy_mean": [(lp[2 * k][0] / lp[2 * k][1], lp[2 * k + 1][0] / lp[2 * k + 1][1]) for k in range(len(held))]}
    print(f"round {args.round}: {len(held)} held-out pairs of {len(rows)} (PPM recorded {ppm.metrics.get('eval_accuracy'):.3f})")
    print("| verifier | all | final | step | this round's |\n|---|---|---|---|---|")
    for name, scores in verifiers.items():
        print(f"| {name} | {accuracy(held, scores, lambda p: True)} | {accuracy(held, scores, lambda p: p['kind'] == 'final')} | "
              f"{accuracy(held, scores, lambda p: p['kind'] == 'step')} | {accuracy(held, scores, lambda p: p['round'] == args.round)} |")


if __name__ == "__main__":
    main()
