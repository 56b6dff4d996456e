"""Evaluation of a policy checkpoint. For now: greedy pass@1 on held-out mini-world problems, reported
with every trained policy. (Benchmark files and search-based methods belong to the evaluation job.)"""

from __future__ import annotations

from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field

from rstar_pipeline.problemsets import ProblemsConfig, load_problems
from rstar_pipeline.sandbox import SandboxConfig, make_sandbox
from rstar_pipeline.search.greedy import solve_greedy


@dataclass(frozen=True)
class HeldoutConfig:
    problems: int = field(default=200, metadata={"help": "held-out mini-world problems (split 'test'); 0 = skip"})
    seed: int = field(default=0, metadata={"help": "held-out problem seed"})
    max_tokens: int = field(default=512, metadata={"help": "longest code block or answer, tokens"})


def heldout_accuracy(model_path: str, config: HeldoutConfig) -> dict:
    """Greedy pass@1 of the policy at `model_path` on held-out mini-world problems, overall and by level."""
    from rstar_pipeline.llm.hf import TransformersGenerator

    problems, _ = load_problems(ProblemsConfig(count=config.problems, split="test", seed=config.seed))
    generator = TransformersGenerator(model_path, batch_size=64)
    with closing(make_sandbox(SandboxConfig(preload=("math", "fractions")))) as sandbox:
        results = solve_greedy(problems, generator, sandbox, max_tokens=config.max_tokens)
    by_level = defaultdict(list)
    for p, r in zip(problems, results):
        by_level[p.level].append(r.is_correct)
    return {"heldout_greedy_pass1": sum(r.is_correct for r in results) / max(len(results), 1),
            **{f"heldout_level_{lv}": sum(v) / len(v) for lv, v in sorted(by_level.items())}}
