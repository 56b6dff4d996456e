"""The code-augmented chain-of-thought step format (rStar-Math, reference §1).

A solution is one Python program split into steps; the reasoning lives in Python comments:

    <code>
    # Step 1: ...
    x = 3
    <end_of_step>

    # Now print the final answer
    print(x)
    <end_of_code>
    <output>3<end_of_output>
    <answer>The answer is \\boxed{3}.<end_of_answer>

This module covers the tags, prompt building (bootstrap few-shot and fine-tuned styles) and its
inverse, parsing one generated step into a typed `Step`, and assembling the program a node
executes. It does not execute code (see `sandbox`) or judge answers (see `grading`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path

from rstar_pipeline.grading import is_equivalent
from rstar_pipeline.grading.extract import extract_boxed
from rstar_pipeline.paths import PROMPTS_DIR

CODE = "<code>"
STEP_END = "<end_of_step>"
CODE_END = "<end_of_code>"
OUTPUT = "<output>"
OUTPUT_END = "<end_of_output>"
ANSWER = "<answer>"
ANSWER_END = "<end_of_answer>"
USER = "<|user|>"
ASSISTANT = "<|assistant|>"

# Added to every tokenizer the project trains or fine-tunes, in this order (policy and PPM alike).
SPECIAL_TOKENS = (CODE, STEP_END, CODE_END, OUTPUT, OUTPUT_END, ANSWER, ANSWER_END, USER, ASSISTANT)

# Stop strings while searching: one generate call yields exactly one step.
SEARCH_STOP = (STEP_END, CODE_END, ANSWER_END)



class StepKind(str, Enum):
    CODE = "code"  # an intermediate code step, ends with <end_of_step>
    CODE_END = "code_end"  # the last code step, ends with <end_of_code>; its output is shown next
    ANSWER = "answer"  # <answer> ... \boxed{...} <end_of_answer>


@dataclass(frozen=True)
class Step:
    """One parsed step. `text` is exactly what joins the solution; `code` is its Python."""

    kind: StepKind
    text: str
    code: str = ""
    answer: str | None = None


class StepParseError(ValueError):
    """Generated text that is not a step of the format; the message says what is wrong."""


def parse_step(text: str, stop: str | None) -> Step:
    """Parse one generated step. `stop` is the stop string that ended generation (None: EOS/length).

    Generation backends drop the stop string from the text, so it is re-attached here.
    """
    full = text + (stop or "")
    if not full.strip():
        raise StepParseError("empty step")
    if ANSWER in full or stop == ANSWER_END or (stop is None and "\\boxed" in full):
        return _parse_answer(full)
    if stop == STEP_END:
        kind = StepKind.CODE
    elif stop == CODE_END:
        kind = StepKind.CODE_END
    elif stop is None:
        raise StepParseError(f"step has no closing tag (generation ended without a stop string): {_preview(full)}")
    else:
        raise StepParseError(f"unexpected stop string {stop!r}: {_preview(full)}")
    if OUTPUT in full or OUTPUT_END in full:
        raise StepParseError("code step writes its own <output> block")
    code = step_code(full)
    if not code.strip():
        raise StepParseError("code step has no code")
    return Step(kind=kind, text=full, code=code)


def _parse_answer(full: str) -> Step:
    answer = extract_boxed(full)
    if answer is None:
        raise StepParseError(f"answer step without \\boxed{{}}: {_preview(full)}")
    if not full.rstrip().endswith(ANSWER_END):
        full = full.rstrip() + ANSWER_END
    return Step(kind=StepKind.ANSWER, text=full, answer=answer)


def step_code(text: str) -> str:
    """The Python of one step: the text with its tags removed (comments are Python already)."""
    code = text.split(CODE_END, 1)[0]
    return code.replace(CODE, "").replace(STEP_END, "")


def program(codes: list[str]) -> str:
    """The program a node executes: its ancestors' code plus its own, in order."""
    return "\n".join(c.strip("\n") for c in codes if c.strip()) + "\n"


def output_block(output: str) -> str:
    """What follows an <end_of_code> step: the program's output as the model will read it."""
    return f"\n{OUTPUT}{output.strip()}{OUTPUT_END}"


def answer_matches_output(solution: str, answer: str | None) -> bool:
    """Does a final answer agree with the last program output shown before it? A code-augmented
    solution that boxes a value its own program did not print contradicts its execution (the mini
    world's student mostly errs this way: `<output>150` answered `\\boxed{156}`). True when no
    output precedes the answer (nothing to contradict); the output's last line is compared by the grader."""
    if answer is None:
        return False
    printed = last_output(solution)
    return True if printed is None else bool(printed) and is_equivalent(answer, [printed])


def last_output(solution: str) -> str | None:
    """The last line of the last `<output>` block (stripped; "" if it is empty), None without one."""
    end = solution.rfind(OUTPUT_END)
    start = solution.rfind(OUTPUT, 0, end)
    if end < 0 or start < 0:
        return None
    lines = solution[start + len(OUTPUT):end].strip().splitlines()
    return lines[-1].strip() if lines else ""


def _preview(text: str, n: int = 80) -> str:
    return json.dumps(text[:n] + ("..." if len(text) > n else ""))


# ---------------------------------------------------------------- prompts


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt style. `suffix` holds `{question}`; the partial solution is appended after it.

    style "bootstrap": instructions + few-shot examples + suffix (round 1's bootstrap model);
    style "sft": a single user/assistant template (the fine-tuned policy and the PPM).
    """

    name: str
    instructions: str
    examples: tuple[str, ...]
    suffix: str

    def build(self, question: str, partial_solution: str = "") -> str:
        return self.head() + self.suffix.format(question=question) + partial_solution

    def head(self) -> str:
        if not self.examples:
            return self.instructions
        count = "The following is a demonstration example." if len(self.examples) == 1 else (
            f"The following are {len(self.examples)} demonstration examples.")
        return "\n".join([self.instructions, count, *self.examples, ""])

    def split(self, prompt: str) -> tuple[str, str]:
        """Inverse of `build`: (question, partial solution) of a prompt built from this template.

        Exact as long as the question does not contain the text that follows `{question}`.
        """
        before, _, after = self.suffix.partition("{question}")
        start = prompt.rfind(before)
        end = prompt.find(after, start + len(before)) if start >= 0 else -1
        if end < 0:
            raise ValueError(f"prompt was not built from template {self.name!r}")
        return prompt[start + len(before):end], prompt[end + len(after):]

    def to_json(self) -> dict:
        return {"name": self.name, "instructions": self.instructions, "examples": list(self.examples),
                "suffix": self.suffix}


@lru_cache(maxsize=16)
def load_template(name_or_path: str) -> PromptTemplate:
    """Load a template by name (a file in assets/prompts) or by path to a JSON file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROMPTS_DIR / f"{name_or_path}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise FileNotFoundError(f"prompt template {path}: {e.strerror}") from e
    missing = {"instructions", "suffix"} - raw.keys()
    if missing:
        raise ValueError(f"prompt template {path} lacks {sorted(missing)}")
    if "{question}" not in raw["suffix"] or raw["suffix"].endswith("{question}"):
        raise ValueError(f"prompt template {path}: suffix must contain {{question}} followed by a separator")
    return PromptTemplate(name=raw.get("name", path.stem), instructions=raw["instructions"],
                          examples=tuple(raw.get("examples", ())), suffix=raw["suffix"])
