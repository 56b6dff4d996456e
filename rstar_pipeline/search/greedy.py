"""Solving without search: the policy writes its whole code block, the sandbox runs it, the policy
reads the output and writes the answer (the reference's `sft_eval_greedy`: stops at <end_of_code> and
<end_of_answer>). Greedy (one solution) or sampled (n solutions per problem, for best-of-N and
majority vote). Batched over problems and samples: one generate call per phase."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

from rstar_pipeline.grading import extract_boxed, is_equivalent
from rstar_pipeline.llm.base import Generator, SamplingConfig
from rstar_pipeline.problemsets import Problem
from rstar_pipeline.sandbox.base import Sandbox
from rstar_pipeline.steps import ANSWER_END, CODE_END, load_template, output_block, step_code


@dataclass(frozen=True)
class GreedyResult:
    problem_id: str
    solution: str  # the text after the question's prompt: code (with any given partial solution), output, answer
    prediction: str | None
    is_correct: bool


def solve_greedy(problems: Sequence[Problem], generator: Generator, sandbox: Sandbox, template: str = "sft",
                 max_tokens: int = 1024, grader: Callable = is_equivalent) -> list[GreedyResult]:
    sampling = SamplingConfig(n=1, temperature=0.0, max_tokens=max_tokens)
    return [group[0] for group in solve_sampled(problems, generator, sandbox, sampling, template, grader)]


def solve_sampled(problems: Sequence[Problem], generator: Generator, sandbox: Sandbox, sampling: SamplingConfig,
                  template: str = "sft", grader: Callable = is_equivalent,
                  partials: Sequence[str] | None = None) -> list[list[GreedyResult]]:
    """`sampling.n` whole solutions per problem: code sampled with `sampling`, answers written greedily.
    With `partials`, each problem's solution continues its partial solution (steps inside the code block,
    e.g. a search node's prefix: Monte-Carlo completions of a step); the results' solutions include it."""
    tpl = load_template(template)
    heads = list(partials) if partials is not None else [""] * len(problems)
    if len(heads) != len(problems):
        raise ValueError(f"solve_sampled: {len(heads)} partial solutions for {len(problems)} problems")
    code_sampling = replace(sampling, stop=(CODE_END, ANSWER_END))
    codes = generator.generate([tpl.build(p.question, h) for p, h in zip(problems, heads)], code_sampling)
    flat = [(p, h, c) for p, h, group in zip(problems, heads, codes) for c in group]
    texts = [h + c.text + (c.stop or "") for _, h, c in flat]
    needs_run = [i for i, (_, _, c) in enumerate(flat) if c.stop == CODE_END]
    results = sandbox.run([step_code(texts[i]) for i in needs_run]) if needs_run else []
    for i, r in zip(needs_run, results):
        texts[i] += output_block(r.stdout if r.ok else r.error_message)
    pending = [i for i, t in enumerate(texts) if needs_answer(t)]
    answer_sampling = replace(code_sampling, n=1, temperature=0.0)
    answers = generator.generate([tpl.build(flat[i][0].question, texts[i]) for i in pending], answer_sampling)
    for i, a in zip(pending, answers):
        texts[i] += a[0].text + (a[0].stop or "")
    out = []
    for (p, _, _), text in zip(flat, texts):
        prediction = extract_boxed(text)
        out.append(GreedyResult(p.problem_id, text, prediction, bool(grader(prediction, p.answers))))
    return [out[k * sampling.n:(k + 1) * sampling.n] for k in range(len(problems))]


def needs_answer(text: str) -> bool:
    """A solution whose code block ended still needs its answer step."""
    return text.endswith("<end_of_output>")
