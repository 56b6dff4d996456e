"""The generation and scoring contracts shared by every backend."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, Sequence


@dataclass(frozen=True)
class SamplingConfig:
    n: int = field(default=1, metadata={"help": "samples per prompt"})
    temperature: float = field(default=0.7, metadata={"help": "0 = greedy"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    max_tokens: int = field(default=1024, metadata={"help": "longest completion, tokens"})
    stop: tuple[str, ...] = field(default=(), metadata={"help": "generation ends at the first of these; it is not returned"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})

    def __post_init__(self):
        if self.n < 1 or self.max_tokens < 1 or self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"invalid sampling config: {self}")


@dataclass(frozen=True)
class Completion:
    text: str  # without the stop string
    finish_reason: str  # "stop" (a stop string or end of sequence) or "length"
    stop: str | None = None  # the stop string that ended it, if any


PPM_SCALE = 5.0


def ppm_readout(raw):
    """The PPM score, everywhere it is used (search, training metrics): tanh(raw / 5), on the scale of
    the +-1 terminal rewards it is mixed with. Takes a float or a tensor."""
    scaled = raw / PPM_SCALE
    return scaled.tanh() if hasattr(scaled, "tanh") else math.tanh(scaled)


def cut_at_stop(text: str, stop: Sequence[str]) -> Completion:
    """A completion of `text` as an inference engine returns it: cut before the first stop string."""
    hits = [(text.find(s), s) for s in stop if s in text]
    if not hits:
        return Completion(text, "stop")
    at, s = min(hits)
    return Completion(text[:at], "stop", s)


class Generator(Protocol):
    def generate(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[list[Completion]]:
        """`sampling.n` completions for every prompt, in prompt order."""
        ...


class PPMScorer(Protocol):
    def score(self, prefixes: Sequence[str]) -> list[float]:
        """One score in (-1, 1) per prompt + partial solution, on the scale of terminal rewards."""
        ...
