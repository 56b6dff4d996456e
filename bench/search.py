"""Search throughput with a trained student, and where the time goes, against the previous generator.

Runs the rounds' MCTS (`run_search`, the mini presets' settings: sft prompt, n samples per expansion,
temperature 1, errors threshold 1) on mini-world problems with a fine-tuned policy, twice in one
process: with the transformers backend as it is (`TransformersGenerator`: its own KV-cache decode loop,
the prompt encoded once for its n samples, finished rows leaving the batch) and with the baseline it
replaced (`model.generate`, `num_return_sequences=n`, one left-padded batch per chunk of prompts).
With `--ppm`, every new step is also scored by a PPM (round 3-4 search); without a PPM folder one is
made from the policy with an untrained value head (the cost is the same). Prints nodes/s and the split
of the wall time (generate, sandbox, PPM scoring, the rest); no thresholds.

    .venv/bin/python bench/search.py --model warehouse/store/models/round_1/policy [--problems 64] [--ppm]
"""

from __future__ import annotations

import argparse
import tempfile
from contextlib import closing
from dataclasses import replace

from rstar_pipeline.llm.base import SamplingConfig
from rstar_pipeline.llm.hf import TransformersGenerator, TransformersScorer
from rstar_pipeline.problemsets import ProblemsConfig, load_problems
from rstar_pipeline.sandbox import SandboxConfig, make_sandbox
from rstar_pipeline.search.config import SearchConfig
from rstar_pipeline.search.mcts import run_search


class GenerateBaseline(TransformersGenerator):
    """The previous transformers backend: `model.generate` with n return sequences per prompt."""

    def _generate_chunk(self, prompts, sampling: SamplingConfig, seed: int):
        torch, tok = self.torch, self.tokenizer
        enc = tok(prompts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_prompt_tokens,
                  add_special_tokens=False)
        stop_ids, stop_strings = self._stops(sampling.stop)
        greedy = sampling.temperature == 0
        kwargs = dict(max_new_tokens=sampling.max_tokens, pad_token_id=tok.pad_token_id,
                      eos_token_id=[*stop_ids, tok.eos_token_id], num_return_sequences=1 if greedy else sampling.n,
                      do_sample=not greedy)
        if not greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        if stop_strings:
            kwargs.update(stop_strings=stop_strings, tokenizer=tok)
        torch.manual_seed(seed)
        with torch.no_grad():
            out = self.model.generate(**enc, **kwargs)
        per_prompt = 1 if greedy else sampling.n
        completions = [self._completion(t, stop_ids, sampling) for t in out[:, enc["input_ids"].shape[1]:].tolist()]
        grouped = [completions[i * per_prompt:(i + 1) * per_prompt] for i in range(len(prompts))]
        return [group * sampling.n if greedy else group for group in grouped]


def untrained_ppm(policy: str, folder: str) -> str:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    AutoModelForSequenceClassification.from_pretrained(policy, num_labels=1).save_pretrained(folder)
    AutoTokenizer.from_pretrained(policy).save_pretrained(folder)
    return folder


def measure(name: str, generator, scorer, problems, config: SearchConfig) -> dict:
    with closing(make_sandbox(SandboxConfig(preload=("math", "fractions")))) as sandbox:
        trees, stats = run_search(problems, generator, sandbox, config, scorer=scorer)
    other = stats.wall_s - stats.generate_s - stats.execute_s - stats.score_s
    solved = sum(any(n.is_correct for n in t.nodes) for t in trees)
    print(f"{name:<16} {stats.nodes / stats.wall_s:7.1f} nodes/s  {stats.nodes:6d} nodes  {stats.wall_s:6.1f} s "
          f"(generate {stats.generate_s:5.1f}, sandbox {stats.execute_s:5.1f}, PPM {stats.score_s:5.1f}, "
          f"other {other:4.1f})  solved {solved}/{len(problems)}", flush=True)
    return {"nodes_per_s": stats.nodes / stats.wall_s, "wall_s": stats.wall_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a fine-tuned policy folder")
    parser.add_argument("--ppm", nargs="?", const="", default=None,
                        help="score new steps with this PPM folder (no value: an untrained head on the policy)")
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--n", type=int, default=4, help="samples per expansion")
    parser.add_argument("--batch-size", type=int, default=64, help="prompts per forward pass")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    problems, _ = load_problems(ProblemsConfig(count=args.problems, split="bench", seed=7))
    config = SearchConfig(rollouts=args.rollouts, n_samples=args.n, template="sft", temperature=1.0,
                          errors_threshold=1, max_tokens=160, seed=1, ppm_init=args.ppm is not None)
    with tempfile.TemporaryDirectory() as tmp:
        scorer = None
        if args.ppm is not None:
            scorer = TransformersScorer(args.ppm or untrained_ppm(args.model, tmp), device="cpu")
        print(f"{len(problems)} problems, {args.rollouts} rollouts x {args.n} samples, batch {args.batch_size}, "
              f"PPM {'on' if scorer else 'off'}, {torch.get_num_threads()} torch threads")
        fast = measure("decode loop", TransformersGenerator(args.model, device="cpu", batch_size=args.batch_size),
                       scorer, problems, config)
        if not args.skip_baseline:
            base = measure("model.generate", GenerateBaseline(args.model, device="cpu", batch_size=args.batch_size),
                           scorer, problems, replace(config))
            print(f"decode loop / model.generate: {fast['nodes_per_s'] / base['nodes_per_s']:.2f}x nodes/s")


if __name__ == "__main__":
    main()
