"""The bootstrap teacher: a `Generator` that writes the next code-augmented step of a mini-world
solution, standing where the paper's 236B bootstrap model stands in round 1.

It reads only the prompt text: the question (parsed back into operations) and the partial
solution (how many steps are done, the variable in use, the last <output>). Sampled at a
temperature above 0 it varies comments and code style and makes realistic mistakes at a tunable
rate: a wrong operand or operator, an off-by-one, code that raises, a premature final answer and
a misread output, so that the search sees good and bad branches.

Like the paper's bootstrap model it is strong but not perfect, and its greedy reading is where it
is weakest: two sentence kinds confuse it ("shares ... equally with k friends" read as k shares,
not k + 1; "grows to b times as many" read as b more), and on long problems it reads the numbers
of operations past its `span` off by one. Greedy (temperature 0) it always reads them so; sampled,
only at `confusion_rate` and `slip_rate`, so that search with verification finds right solutions
the greedy teacher never writes, and a student trained on them can overtake it. With
`confusions=()` and `span=0` the greedy teacher is always right. It writes steps until one of the
stop strings (or the end of the code block, whose output it needs, or of the answer). It does not
solve problems outside the mini world's templates.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Sequence

from rstar_pipeline.llm.base import Completion, SamplingConfig, cut_at_stop
from rstar_pipeline.miniworld.problems import SENTENCES, Op, ReadQuestion, read_question
from rstar_pipeline.steps import ANSWER, ANSWER_END, CODE, CODE_END, OUTPUT, OUTPUT_END, STEP_END, load_template

MISTAKES = ("wrong_operand", "wrong_operator", "off_by_one", "code_error", "premature_answer")
# Sentences the teacher can misread, and how: the sentence template and the operation it reads instead.
CONFUSIONS = {
    "friends": (SENTENCES["div"][1], lambda op: Op("div", op.b - 1)),  # k friends + itself: k + 1 shares, not k
    "grows": (SENTENCES["mul"][0], lambda op: Op("add", op.b)),  # grows to b times as many, not by b
}
MAX_STEPS = 32  # steps written in one call at most (a solution has one per operation, plus two)


@dataclass(frozen=True)
class TeacherConfig:
    mistake_rate: float = field(default=0.12, metadata={"help": "chance that a sampled step contains a mistake"})
    mistake_weights: tuple[float, ...] = field(
        default=(1.0, 1.0, 1.0, 1.0, 0.5),
        metadata={"help": "relative weights of " + ", ".join(MISTAKES)})
    confusions: tuple[str, ...] = field(default=("friends", "grows"), metadata={
        "help": "sentence kinds it misreads (" + ", ".join(CONFUSIONS) + "): always greedy, at confusion_rate sampled"})
    confusion_rate: float = field(default=0.5, metadata={"help": "chance that a sampled step misreads a confusing sentence"})
    span: int = field(default=5, metadata={
        "help": "operations it reads carefully; later ones it reads off by one (always greedy, at slip_rate sampled); "
                "0 = no limit"})
    slip_rate: float = field(default=0.5, metadata={"help": "chance that a sampled step past the span slips"})
    templates: tuple[str, ...] = field(default=("bootstrap", "sft"), metadata={"help": "prompt templates it can read"})
    seed: int = field(default=0, metadata={"help": "teacher seed, mixed with the sampling seed"})

    def __post_init__(self):
        rates = (self.mistake_rate, self.confusion_rate, self.slip_rate)
        if not all(0 <= r <= 1 for r in rates) or len(self.mistake_weights) != len(MISTAKES):
            raise ValueError(f"teacher rates must be in [0, 1] and mistake_weights have {len(MISTAKES)} values")
        unknown = [c for c in self.confusions if c not in CONFUSIONS]
        if unknown or self.span < 0:
            raise ValueError(f"teacher: confusions must be among {tuple(CONFUSIONS)} (not {unknown}), span >= 0")


class BootstrapTeacher:
    """Generator backend for the mini world. Deterministic per (seed, prompt, sample index)."""

    def __init__(self, config: TeacherConfig = TeacherConfig()):
        self.config = config
        self.templates = [load_template(t) for t in config.templates]

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[list[Completion]]:
        return [[self._sample(p, k, sampling) for k in range(sampling.n)] for p in prompts]

    def _sample(self, prompt: str, k: int, sampling: SamplingConfig) -> Completion:
        rng = random.Random(f"{self.config.seed}|{sampling.seed}|{k}|{prompt}")
        try:
            question, partial = self._read_prompt(prompt)
            read = read_question(question)
        except ValueError:
            return Completion("", "stop")  # not a mini-world problem: like a model with nothing to say
        text = ""
        for _ in range(MAX_STEPS):
            text += _Writer(read, partial + text, rng, self._mistake(rng, sampling), sampling.temperature == 0,
                            self.config).next_step()
            done = cut_at_stop(text, sampling.stop)
            if done.stop or text.endswith((CODE_END, ANSWER_END)):  # a stop string, or it needs the output / is done
                return done
        return Completion(text, "length")

    def _read_prompt(self, prompt: str) -> tuple[str, str]:
        for template in self.templates:
            try:
                return template.split(prompt)
            except ValueError:
                continue
        raise ValueError("no known prompt template matches")

    def _mistake(self, rng: random.Random, sampling: SamplingConfig) -> str | None:
        if sampling.temperature == 0 or rng.random() >= self.config.mistake_rate:
            return None
        return rng.choices(MISTAKES, weights=self.config.mistake_weights)[0]


class _Writer:
    """Writes one step given the question and the partial solution."""

    def __init__(self, q: ReadQuestion, partial: str, rng: random.Random, mistake: str | None, greedy: bool,
                 config: TeacherConfig):
        self.q, self.partial, self.rng, self.mistake = q, partial, rng, mistake
        self.greedy, self.config = greedy, config
        self.var = _variable(partial) or rng.choice([q.item, "total", f"num_{q.item}"])
        self.done = partial.count(STEP_END)

    def next_step(self) -> str:
        if CODE_END in self.partial:
            return self._answer()
        if self.done == 0:
            return self._start()
        if self.done > len(self.q.ops) or (self.mistake == "premature_answer" and self.done < len(self.q.ops)):
            return self._print()
        return self._op(self._reading(self.done - 1))

    def _start(self) -> str:
        comment = self.rng.choice([f"{self.q.name} starts with {self.q.start} {self.q.item}",
                                   f"The number of {self.q.item} at the start",
                                   f"Initial count of {self.q.item}"])
        return f"{CODE}\n# Step 1: {comment}\n{self.var} = {self._number(self.q.start)}\n{STEP_END}"

    def _op(self, op: Op) -> str:
        kind, b, c = self._mutate(op)
        comment = self.rng.choice(_COMMENTS[kind]).format(b=b, c=c, item=self.q.item, k=b - 1)
        expr = {"add": f"{self.var} + {b}", "sub": f"{self.var} - {b}", "mul": f"{self.var} * {b}",
                "div": self.rng.choice([f"{self.var} // {b}", f"{self.var} / {b}"]),
                "groups": f"{self.var} + {b} * {c}"}[kind]
        line = f"{self.var} = {expr}"
        if self.mistake == "code_error":
            line = self._broken(line, b)
        return f"\n\n# Step {self.done + 1}: {comment}\n{line}\n{STEP_END}"

    def _reading(self, index: int) -> Op:
        """Operation `index` as the teacher reads it: confusing sentences and operations past its span are
        misread always when greedy, at their rates when sampled."""
        op, template = self.q.ops[index], self.q.templates[index]
        for name in self.config.confusions:
            confusing, misread = CONFUSIONS[name]
            if template == confusing and self._misreads(self.config.confusion_rate):
                op = misread(op)
        if self.config.span and index >= self.config.span and self._misreads(self.config.slip_rate):
            op = Op(op.kind, op.b + 1, op.c)
        return op

    def _misreads(self, rate: float) -> bool:
        return self.greedy or self.rng.random() < rate

    def _mutate(self, op: Op) -> tuple[str, int, int]:
        kind, b, c = op.kind, op.b, op.c
        if self.mistake == "wrong_operand":
            others = [n for n in self.q.numbers if n not in (b, c)] or [b + 2]
            b = self.rng.choice(others + [b + self.rng.randint(2, 5)])
        elif self.mistake == "wrong_operator":
            kind = {"add": "sub", "sub": "add", "mul": "add", "div": "mul", "groups": "add"}[kind]
            b = b * c if op.kind == "groups" else b
        elif self.mistake == "off_by_one":
            b = b + self.rng.choice([-1, 1]) if b > 2 else b + 1
        return kind, b, c

    def _broken(self, line: str, b: int) -> str:
        return self.rng.choice([
            line.replace(f"= {self.var}", f"= {self.var}_total", 1),  # NameError
            f"{line} + per_{self.q.item}",  # NameError
            f'{self.var} = {self.var} + "{b}"',  # TypeError
            f"{line})",  # SyntaxError
        ])

    def _print(self) -> str:
        comment = self.rng.choice(["Now print the final answer", "Now print the final answer"
                                   f" (the number of {self.q.item})"])
        return f"\n\n# {comment}\nprint({self.var})\n{CODE_END}"

    def _answer(self) -> str:
        outputs = re.findall(re.escape(OUTPUT) + r"(.*?)" + re.escape(OUTPUT_END), self.partial, re.S)
        value = outputs[-1].strip() if outputs else ""
        if not re.fullmatch(r"-?\d+(\.\d+)?", value):
            value = str(self.rng.choice(self.q.numbers))  # no usable output: a guess
        elif self.mistake is not None and self.mistake != "premature_answer":
            value = str(int(float(value)) + self.rng.choice([-1, 1]))  # misread the output
        sentence = self.rng.choice([f"{self.q.name} has \\boxed{{{value}}} {self.q.item} now.",
                                    f"The answer is \\boxed{{{value}}}.",
                                    f"From the output, {self.q.name} ends up with \\boxed{{{value}}} {self.q.item}."])
        return f"\n{ANSWER}{sentence}\n{ANSWER_END}"

    def _number(self, n: int) -> int:
        if self.mistake in ("wrong_operand", "off_by_one"):
            return n + self.rng.choice([-1, 1]) * (1 if self.mistake == "off_by_one" else self.rng.randint(2, 9))
        return n


_COMMENTS = {
    "add": ["Add the {b} new {item}", "{b} more {item} arrive, so add them", "Increase the count by {b}"],
    "sub": ["Subtract the {b} {item} that are gone", "{b} {item} are taken away", "Decrease the count by {b}"],
    "mul": ["The count becomes {b} times as large", "Multiply the number of {item} by {b}", "Scale by {b}"],
    "div": ["Split into {b} equal parts and keep one", "Divide the {item} by {b}", "Keep one share out of {b}"],
    "groups": ["Add {b} packs of {c} {item} each", "{b} groups of {c} more {item}", "Add {b} times {c} {item}"],
}


def _variable(partial: str) -> str | None:
    m = re.search(r"^([A-Za-z_]\w*) = ", partial, re.M)
    return m.group(1) if m else None
