"""Generation throughput of the transformers backend, batched vs one prompt at a time, in one run.

  batched     all prompts in one `generate` call (`--batch-size` prompts per forward pass, n samples each)
  sequential  one `generate` call per prompt (n samples each), as a naive search loop would do
  kv cache    whole greedy solutions (`--solution-tokens`, as the evaluation writes them) with the
              generator's preallocated KV cache against transformers' `DynamicLayer` (which copies
              the whole cache at every token); the bench checks both give the same tokens

Model: the mini world's tiny student (random weights, built into a temporary directory), or
`--model PATH` (e.g. a fine-tuned policy). Prompts: mini-world questions in the fine-tuned prompt
style, some with one or two steps of partial solution (as MCTS sends them), generated with
SEARCH_STOP, n=4, temperature 1, max_tokens 64; the sequential run varies the seed per call.
Prints completions/s and tokens/s (generated tokens, re-tokenised from the text with the stop tag,
at most max_tokens each) for both and the ratio; no thresholds. torch runs on
`--threads` intra-op threads (1 by default: a model this small gains nothing from more, and loses
much when another process holds a core).

    .venv/bin/python bench/generation.py [--model PATH] [--prompts 64] [--batch-size 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

from rstar_pipeline.llm.base import SamplingConfig
from rstar_pipeline.llm.hf import TransformersGenerator
from rstar_pipeline.miniworld.problems import generate as problems
from rstar_pipeline.steps import SEARCH_STOP, load_template

PARTIAL_STEPS = ["<code>\n# Step 1: what we start with\ntotal = {start}\n<end_of_step>",
                 "\n\n# Step 2: apply the first change\ntotal = total + 3\n<end_of_step>"]


def prompts(count: int) -> list[str]:
    sft = load_template("sft")
    out = []
    for i, p in enumerate(problems(count, "bench:generation")):
        partial = "".join(PARTIAL_STEPS[:i % 3]).format(start=p.start)
        out.append(sft.build(p.question, partial))
    return out


def run(generator: TransformersGenerator, calls: list[tuple[list[str], SamplingConfig]]) -> dict:
    start = time.perf_counter()
    completions = [c for batch, sampling in calls for group in generator.generate(batch, sampling) for c in group]
    seconds = time.perf_counter() - start
    # Re-tokenised, so capped: random weights emit byte fragments that decode to U+FFFD and re-encode longer.
    cap = max(sampling.max_tokens for _, sampling in calls)
    tokens = sum(min(cap, len(generator.tokenizer.encode(c.text + (c.stop or ""), add_special_tokens=False)))
                 for c in completions)
    return {"seconds": seconds, "completions": len(completions), "tokens": tokens,
            "stopped": sum(c.stop is not None for c in completions)}


def compare_caches(generator: TransformersGenerator, texts: list[str], sampling: SamplingConfig) -> dict:
    """Greedy whole solutions with each KV cache, dynamic first (the baseline), same prompts."""
    out = {}
    for name, preallocated in (("dynamic", False), ("preallocated", True)):
        generator.preallocated_cache = preallocated
        start = time.perf_counter()
        groups = generator.generate(texts, sampling)
        out[name] = {"seconds": time.perf_counter() - start, "completions": len(groups), "stopped": 0,
                     "texts": [g[0].text for g in groups]}
        out[name]["tokens"] = sum(len(generator.tokenizer.encode(t, add_special_tokens=False))
                                  for t in out[name]["texts"])
    out["preallocated"]["same"] = out["preallocated"].pop("texts") == out["dynamic"].pop("texts")
    return out


def report(name: str, r: dict) -> None:
    print(f"{name:<11} {r['completions'] / r['seconds']:9.1f} completions/s {r['tokens'] / r['seconds']:9.0f} "
          f"tokens/s  ({r['completions']} completions, {r['tokens'] / r['completions']:.1f} tokens each, "
          f"{r['stopped'] / r['completions']:.0%} ended by a stop tag, {r['seconds']:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: build the tiny student into a temp dir)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64, help="prompts per forward pass, batched run")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--solution-tokens", type=int, default=256, help="max_tokens of the kv-cache comparison")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from rstar_pipeline.miniworld.student import StudentConfig, build_student

            facts = build_student(tmp, StudentConfig(corpus_problems=300))
            model = tmp
            print(f"model: tiny student, {facts['parameters']:,} parameters, vocab {facts['vocab']} (random weights)")
        else:
            print(f"model: {model}")
        generator = TransformersGenerator(model, device="cpu", dtype="float32", batch_size=args.batch_size)
        sampling = SamplingConfig(n=args.n, temperature=1.0, max_tokens=args.max_tokens, stop=SEARCH_STOP, seed=0)
        texts = prompts(args.prompts)
        print(f"{len(texts)} prompts, n={args.n}, temperature 1, max_tokens {args.max_tokens}, stop {SEARCH_STOP}, "
              f"batch_size {args.batch_size}, {torch.get_num_threads()} torch thread(s)")
        generator.generate(texts[:2], sampling)  # warm-up: first-call allocations
        batched = run(generator, [(texts, sampling)])
        # A seed per call, as a search would vary it: with one seed for all, near-uniform random weights
        # draw the same tokens whatever the prompt, and every call would end alike.
        sequential = run(generator, [([t], replace(sampling, seed=i)) for i, t in enumerate(texts)])
        caches = compare_caches(generator, texts, replace(sampling, n=1, temperature=0.0, stop=(),
                                                          max_tokens=args.solution_tokens))
    report("batched", batched)
    report("sequential", sequential)
    for name, r in caches.items():
        report(name, r)
    print(f"preallocated / dynamic kv cache: {caches['dynamic']['seconds'] / caches['preallocated']['seconds']:.2f}x "
          f"({args.solution_tokens} tokens, same tokens: {caches['preallocated'].pop('same')})")
    rate = lambda r, key: r[key] / r["seconds"]
    print(f"batched / sequential: {rate(batched, 'completions') / rate(sequential, 'completions'):.1f}x "
          f"completions/s, {rate(batched, 'tokens') / rate(sequential, 'tokens'):.1f}x tokens/s")


if __name__ == "__main__":
    main()
