"""Mini-world problems: seeded multi-step arithmetic word problems with exact integer answers.

A problem is a start quantity followed by `level` operations (1-5), each told in one sentence:

    Mia has 12 marbles. Then she buys 3 packs of marbles with 6 in each pack. She loses 9 marbles.
    How many marbles does Mia have now?

Every sentence comes from a template that is also a regular expression, so `read_question` turns
a question back into its operations; the bootstrap teacher reads problems that way.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

NAMES = {"Mia": "she", "Liam": "he", "Ava": "she", "Noah": "he", "Zoe": "she", "Omar": "he",
         "Iris": "she", "Theo": "he", "Nina": "she", "Hugo": "he"}
ITEMS = ("apples", "marbles", "stickers", "coins", "cards", "pencils", "shells", "stamps", "cookies", "beads")

START = "{name} has {a} {item}."
QUESTION = "How many {item} does {name} have now?"
# kind -> sentence templates; fields: {pron} {Pron} {obj} {item} and numbers {b} {c} {k}
SENTENCES = {
    "add": ("Then {pron} buys {b} more {item}.", "A friend gives {obj} {b} more {item}.",
            "{Pron} finds {b} more {item}."),
    "sub": ("Then {pron} gives away {b} {item}.", "{Pron} loses {b} {item}.", "{Pron} uses {b} of the {item}."),
    "mul": ("Then the number of {item} grows to {b} times as many.",
            "{Pron} ends up with {b} times as many {item} as before."),
    "div": ("{Pron} splits the {item} into {b} equal groups and keeps one group.",
            "Then {pron} shares the {item} equally with {k} friends and keeps one share."),
    "groups": ("{Pron} buys {b} packs of {item} with {c} in each pack.",
               "Then {pron} gets {b} boxes holding {c} {item} each."),
}


@dataclass(frozen=True)
class Op:
    kind: str  # add, sub, mul, div, groups
    b: int
    c: int = 0  # second operand of "groups"

    def apply(self, value: int) -> int:
        return {"add": value + self.b, "sub": value - self.b, "mul": value * self.b,
                "div": value // self.b, "groups": value + self.b * self.c}[self.kind]


@dataclass(frozen=True)
class MiniProblem:
    question: str
    answer: int
    level: int
    name: str
    item: str
    start: int
    ops: tuple[Op, ...]


def generate(count: int, seed: int | str, min_level: int = 1, max_level: int = 5) -> list[MiniProblem]:
    """`count` problems, levels uniform in [min_level, max_level]; the same seed gives the same list."""
    rng = random.Random(f"miniworld:{seed}")
    return [make_problem(rng, rng.randint(min_level, max_level)) for _ in range(count)]


def make_problem(rng: random.Random, level: int) -> MiniProblem:
    name, item = rng.choice(sorted(NAMES)), rng.choice(ITEMS)
    start = value = rng.randint(5, 60)
    ops, sentences = [], []
    for _ in range(level):
        op, sentence = _random_op(rng, value, name, item)
        value = op.apply(value)
        ops.append(op)
        sentences.append(sentence)
    text = " ".join([START.format(name=name, a=start, item=item), *sentences, QUESTION.format(item=item, name=name)])
    return MiniProblem(text, value, level, name, item, start, tuple(ops))


def _random_op(rng: random.Random, value: int, name: str, item: str) -> tuple[Op, str]:
    kinds = ["add", "sub", "groups"] + (["mul"] if value <= 150 else []) + (["div"] if _divisors(value) else [])
    kinds = [k for k in kinds if k != "sub" or value > 2]
    kind = rng.choice(kinds)
    if kind == "add":
        op = Op("add", rng.randint(2, 40))
    elif kind == "sub":
        op = Op("sub", rng.randint(1, value - 1))
    elif kind == "mul":
        op = Op("mul", rng.randint(2, 4))
    elif kind == "div":
        op = Op("div", rng.choice(_divisors(value)))
    else:
        op = Op("groups", rng.randint(2, 6), rng.randint(2, 12))
    template = rng.choice(SENTENCES[kind])
    if "{k}" in template and op.b < 3:  # "shares with 1 friends" reads badly
        template = SENTENCES[kind][0]
    pron = NAMES[name]
    sentence = template.format(pron=pron, Pron=pron.capitalize(), obj="her" if pron == "she" else "him",
                               item=item, b=op.b, c=op.c, k=op.b - 1)
    return op, sentence


def _divisors(value: int) -> list[int]:
    return [d for d in range(2, 10) if value % d == 0 and value // d >= 2]


# ---------------------------------------------------------------- reading a question back

_FIELDS = {"{name}": r"(?P<name>[A-Z][a-z]+)", "{pron}": r"(?:he|she)", "{Pron}": r"(?:He|She)",
           "{obj}": r"(?:him|her)", "{item}": r"(?P<item>[a-z]+)", "{a}": r"(?P<a>\d+)", "{b}": r"(?P<b>\d+)",
           "{c}": r"(?P<c>\d+)", "{k}": r"(?P<k>\d+)"}


def _pattern(template: str) -> re.Pattern:
    regex = re.escape(template)
    for field_, group in _FIELDS.items():
        regex = regex.replace(re.escape(field_), group)
    return re.compile(regex)


_START_RE = _pattern(START)
_QUESTION_RE = _pattern(QUESTION)
_OP_RES = [(kind, t, _pattern(t)) for kind, templates in SENTENCES.items() for t in templates]


@dataclass(frozen=True)
class ReadQuestion:
    name: str
    item: str
    start: int
    ops: tuple[Op, ...]
    numbers: tuple[int, ...]  # every number in the text, in order (a careless reader picks from these)
    templates: tuple[str, ...] = ()  # the sentence template of each operation


def read_question(question: str) -> ReadQuestion:
    """The operations of a mini-world question; ValueError if a sentence is not a known template."""
    sentences = re.split(r"(?<=[.?])\s+", question.strip())
    start = _START_RE.fullmatch(sentences[0]) if sentences else None
    if start is None or not _QUESTION_RE.fullmatch(sentences[-1]):
        raise ValueError(f"not a mini-world question: {question[:80]!r}")
    read = [_read_op(s) for s in sentences[1:-1]]
    numbers = tuple(int(n) for n in re.findall(r"\d+", question))
    return ReadQuestion(start["name"], start["item"], int(start["a"]), tuple(op for op, _ in read), numbers,
                        tuple(template for _, template in read))


def _read_op(sentence: str) -> tuple[Op, str]:
    for kind, template, regex in _OP_RES:
        m = regex.fullmatch(sentence)
        if m:
            groups = m.groupdict()
            if groups.get("k") is not None:
                return Op(kind, int(groups["k"]) + 1), template
            return Op(kind, int(groups["b"]), int(groups.get("c") or 0)), template
    raise ValueError(f"unknown sentence: {sentence!r}")
