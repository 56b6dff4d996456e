"""Probes of what the mini-world student has learnt, on its own solutions' tokens.

Teacher-forced accuracy by kind of token: `start` (the first value, copied from the question),
`comment` and `code` (an operation's numbers in the step's comment and code), `answer` (the number in
\\boxed{}, a copy of the <output> before it), `output` (the program's output: arithmetic the model is
not asked to do) and `text` (everything else). A student that fails to copy numbers shows it here
long before its pass@1 moves (bench/student.py; the learning regression test).
"""

from __future__ import annotations

import re
from collections import defaultdict
from contextlib import closing

from rstar_pipeline.llm.base import SamplingConfig
from rstar_pipeline.miniworld.problems import generate
from rstar_pipeline.miniworld.teacher import BootstrapTeacher, TeacherConfig
from rstar_pipeline.problemsets import Problem
from rstar_pipeline.sandbox import SandboxConfig, make_sandbox
from rstar_pipeline.search.greedy import solve_sampled
from rstar_pipeline.steps import ANSWER, OUTPUT, OUTPUT_END, STEP_END, load_template

KINDS = ("start", "comment", "code", "answer", "output", "text")
SFT = load_template("sft")


def problems(count: int, seed: str, max_level: int) -> list[Problem]:
    return [Problem(f"{seed}-{i}", "miniworld", "probe", p.question, (str(p.answer),), p.level)
            for i, p in enumerate(generate(count, seed, 1, max_level))]


def teacher_rows(items: list[Problem], seed: int, sandbox_config: SandboxConfig) -> list[dict]:
    """SFT rows: the correct solutions of a mistake-free teacher sampled at 0.7 (varied comments and
    code, as search data has), run in the sandbox. Round 1's SFT data without the cost of search."""
    teacher = BootstrapTeacher(TeacherConfig(mistake_rate=0.0, confusions=(), span=0, seed=seed))
    with closing(make_sandbox(sandbox_config)) as sandbox:
        groups = solve_sampled(items, teacher, sandbox, SamplingConfig(n=1, temperature=0.7, seed=seed))
    return [{"problem_id": p.problem_id, "prompt": SFT.build(p.question), "completion": g[0].solution,
             "level": p.level} for p, g in zip(items, groups) if g[0].is_correct]


def token_kinds(tokenizer, row: dict) -> tuple[list[int], list[str | None]]:
    """Token ids of prompt + completion and the kind of each completion token (None: prompt)."""
    prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
    enc = tokenizer(row["completion"], add_special_tokens=False, return_offsets_mapping=True)
    text = row["completion"]
    outputs = [m.span() for m in re.finditer(re.escape(OUTPUT) + ".*?" + re.escape(OUTPUT_END), text, re.S)]
    answer_at = text.find(ANSWER)
    kinds = [_kind(text, a, b, outputs, answer_at) for a, b in enc["offset_mapping"]]
    return prompt + enc["input_ids"], [None] * len(prompt) + kinds


def _kind(text: str, a: int, b: int, outputs: list[tuple[int, int]], answer_at: int) -> str:
    line = text[text.rfind("\n", 0, a) + 1:a]
    if not re.search(r"\d", text[a:b]) or re.fullmatch(r"# Step\s*", line):
        return "text"  # no digit, or the step's number
    if any(s <= a < e for s, e in outputs):
        return "output"
    if 0 <= answer_at <= a:
        return "answer"
    if text.count(STEP_END, 0, a) == 0:
        return "start"
    return "comment" if line.lstrip().startswith("#") else "code"


def token_accuracy(model, tokenizer, rows: list[dict]) -> dict[str, float]:
    """Teacher-forced next-token accuracy of `model` on `rows`, by kind of token."""
    import torch

    hits, totals = defaultdict(int), defaultdict(int)
    model.eval()
    with torch.inference_mode():
        for row in rows:
            ids, kinds = token_kinds(tokenizer, row)
            predicted = model(input_ids=torch.tensor([ids])).logits[0, :-1].argmax(-1).tolist()
            for pos, kind in enumerate(kinds[1:]):
                if kind:
                    totals[kind] += 1
                    hits[kind] += predicted[pos] == ids[pos + 1]
    return {k: round(hits[k] / totals[k], 3) for k in KINDS if totals[k]}
