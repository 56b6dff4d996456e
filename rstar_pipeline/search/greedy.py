"""Greedy solving without search: the policy writes its whole code block, the sandbox runs it, the
policy reads the output and writes the answer (the reference's `sft_eval_greedy`: stops at
<end_of_code> and <end_of_answer>). Batched over problems: one generate call per phase."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from rstar_pipeline.grading import extract_boxed, is_equivalent
from rstar_pipeline.llm.base import Generator, SamplingConfig
from rstar_pipeline.problemsets import Problem
from rstar_pipeline.sandbox.base import Sandbox
from rstar_pipeline.steps import ANSWER_END, CODE_END, load_template, output_block, step_code


@dataclass(frozen=True)
class GreedyResult:
    problem_id: str
    solution: str
    prediction: str | None
    is_correct: bool


def solve_greedy(problems: Sequence[Problem], generator: Generator, sandbox: Sandbox, template: str = "sft",
                 max_tokens: int = 1024, grader: Callable = is_equivalent) -> list[GreedyResult]:
    tpl = load_template(template)
    sampling = SamplingConfig(n=1, temperature=0.0, max_tokens=max_tokens, stop=(CODE_END, ANSWER_END))
    code = [c[0] for c in generator.generate([tpl.build(p.question) for p in problems], sampling)]
    texts = [c.text + (c.stop or "") for c in code]
    needs_run = [i for i, c in enumerate(code) if c.stop == CODE_END]
    results = sandbox.run([step_code(texts[i]) for i in needs_run]) if needs_run else []
    for i, r in zip(needs_run, results):
        texts[i] += output_block(r.stdout if r.ok else r.error_message)
    answers = [c[0] for c in generator.generate([tpl.build(p.question, t) for p, t in zip(problems, texts)], sampling)]
    out = []
    for p, text, a in zip(problems, texts, answers):
        solution = text + a.text + (a.stop or "") if needs_answer(text) else text
        prediction = extract_boxed(solution)
        out.append(GreedyResult(p.problem_id, solution, prediction, bool(grader(prediction, p.answers))))
    return out


def needs_answer(text: str) -> bool:
    """A solution whose code block ended still needs its answer step."""
    return text.endswith("<end_of_output>")
