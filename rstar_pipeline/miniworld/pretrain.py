"""Pretraining of the mini world's base model: what a real base model knows before round 1.

A model like Qwen2.5-Math-7B has read a great deal of text and of code with its output before anyone
fine-tunes it. The student gets a small version of that: a short language-model run on three kinds of
documents, none of which solves a mini-world problem:

- the world's text: mini-world questions (from their own seed, never the rounds' problems), without
  solutions: names, items, numbers and sentence shapes;
- generic Python snippets with their interpreter output and a sentence that reports the printed value
  in `\\boxed{}`, in the notebook format the pipeline uses (`<code>`, `<output>`, `<answer>`): variables
  and arithmetic, never a word problem, so it learns that the answer repeats the printed output, not
  which operation a sentence asks for;
- optionally (`pretrain_reading_share`), reading: prose, then code that writes each of its numbers down
  in a commented assignment and prints one of them. A real base model has read much code that takes its
  numbers from the text around it; this is that skill (copying a number from prose into a comment and
  the code), with no operation of the world in it. The prose is either a world question whose sentences
  the code quotes one by one (`questions`, the default: the step that follows a sentence is where SFT's
  solutions take their next operand from) or one sentence that lists a few quantities (`lists`).

The loop is plain PyTorch (next-token loss on every token, AdamW, constant learning rate after a
short warm-up, gradient clipping 1.0), seeded.
"""

from __future__ import annotations

import random
import re
import time

from rstar_pipeline.miniworld.problems import ITEMS, NAMES, generate, make_problem
from rstar_pipeline.steps import ANSWER, ANSWER_END, CODE, CODE_END, OUTPUT, OUTPUT_END

SNIPPET_SHARE = 0.7  # of the pretraining documents; the rest are questions
_VARIABLES = ("x", "y", "n", "a", "b", "total", "count", "value", "result", *ITEMS)
_LISTS = ("{name} has {things}.", "In the box there are {things}.", "{name} counts {things}.")
_REPORTS = ("The answer is \\boxed{%s}.", "So the value is \\boxed{%s}.", "We get \\boxed{%s}.",
            "The program prints \\boxed{%s}.")


def snippet(rng: random.Random) -> str:
    """A short program of assignments and arithmetic on one variable, its output and a report of it."""
    var, value = rng.choice(_VARIABLES), rng.randint(1, 60)
    lines = [f"{var} = {value}"]
    for _ in range(rng.randint(0, 4)):
        op = rng.choice("+-*")
        b = rng.randint(2, 6) if op == "*" else rng.randint(2, 40)
        if op == "-" and b >= value:
            op = "+"
        value = {"+": value + b, "-": value - b, "*": value * b}[op]
        lines.append(f"{var} = {var} {op} {b}")
    code = "\n".join(lines + [f"print({var})"])
    return (f"{CODE}\n{code}\n{CODE_END}\n{OUTPUT}{value}{OUTPUT_END}\n"
            f"{ANSWER}{rng.choice(_REPORTS) % value}\n{ANSWER_END}")


def reading(rng: random.Random) -> str:
    """A sentence listing 2-6 quantities, code that writes each down (comment and assignment) and prints one."""
    items = rng.sample(ITEMS, rng.randint(2, 6))
    values = [rng.randint(2, 90) for _ in items]
    listed = [f"{v} {item}" for v, item in zip(values, items)]
    owner = rng.choice(sorted(NAMES))
    sentence = rng.choice(_LISTS).format(name=owner, things=", ".join(listed[:-1]) + " and " + listed[-1])
    lines = []
    for k, (v, item) in enumerate(zip(values, items), 1):
        lines += [f"# Step {k}: {owner} has {v} {item}", f"{item} = {v}"]
    shown = rng.randrange(len(items))
    code = "\n".join(lines + [f"print({items[shown]})"])
    return (f"{sentence}\n{CODE}\n{code}\n{CODE_END}\n{OUTPUT}{values[shown]}{OUTPUT_END}\n"
            f"{ANSWER}{rng.choice(_REPORTS) % values[shown]}\n{ANSWER_END}")


def question_reading(rng: random.Random) -> str:
    """A world question (levels 1-6), then code that quotes each sentence in a comment, assigns its numbers
    (one, or a tuple of two) and prints the first number of one sentence. No operation is applied."""
    question = make_problem(rng, rng.randint(1, 6)).question
    sentences = re.split(r"(?<=[.?])\s+", question)[:-1]  # the last one asks the question
    numbers = [[int(n) for n in re.findall(r"\d+", s)] for s in sentences]
    lines = []
    for k, (sentence, nums) in enumerate(zip(sentences, numbers), 1):
        lines += [f"# Step {k}: {sentence}", f"step_{k} = {nums[0] if len(nums) == 1 else tuple(nums)}"]
    shown = rng.randrange(len(sentences))
    value = numbers[shown][0]
    code = "\n".join(lines + [f"print(step_{shown + 1}{'' if len(numbers[shown]) == 1 else '[0]'})"])
    return (f"{question}\n{CODE}\n{code}\n{CODE_END}\n{OUTPUT}{value}{OUTPUT_END}\n"
            f"{ANSWER}{rng.choice(_REPORTS) % value}\n{ANSWER_END}")


READING = {"questions": question_reading, "lists": reading}


def documents(count: int, seed: int, reading_share: float = 0.0, reading_kind: str = "questions") -> list[str]:
    rng = random.Random(f"pretrain:{seed}")
    questions = [p.question for p in generate(count, f"pretrain:{seed}", 1, 8)]
    docs = []
    for _ in range(count):
        if reading_share and rng.random() < reading_share:
            docs.append(READING[reading_kind](rng))
        else:
            docs.append(snippet(rng) if rng.random() < SNIPPET_SHARE else rng.choice(questions))
    return docs


def pretrain(model, tokenizer, config) -> dict:
    """Train `model` in place for `config.pretrain_steps` steps; returns its loss and time."""
    import torch
    import torch.nn.functional as F

    docs = documents(config.pretrain_steps * config.pretrain_batch_size, config.seed, config.pretrain_reading_share,
                     config.pretrain_reading)
    encoded = [tokenizer(d, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for d in docs]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.pretrain_lr, betas=(0.9, 0.95), weight_decay=0.0)
    warmup = max(1, config.pretrain_steps // 10)
    model.train()
    start, losses = time.perf_counter(), []
    for step in range(config.pretrain_steps):
        batch = encoded[step * config.pretrain_batch_size:(step + 1) * config.pretrain_batch_size]
        ids, mask = _pad(torch, batch, tokenizer.pad_token_id)
        for group in optimizer.param_groups:
            group["lr"] = config.pretrain_lr * min(1.0, (step + 1) / warmup)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    tail = losses[-20:]
    return {"pretrain_final_loss": round(sum(tail) / len(tail), 4), "pretrain_s": round(time.perf_counter() - start, 1)}


def _pad(torch, batch: list[list[int]], pad_id: int):
    width = max(len(b) for b in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, b in enumerate(batch):
        ids[i, :len(b)] = torch.tensor(b)
        mask[i, :len(b)] = 1
    return ids, mask
