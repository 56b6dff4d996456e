"""Configuration of one MCTS run (one round's search). Every field changes results."""

from __future__ import annotations

from dataclasses import dataclass, field

from rstar_pipeline.llm.base import SamplingConfig
from rstar_pipeline.steps import SEARCH_STOP


@dataclass(frozen=True)
class SearchConfig:
    """MCTS over code-augmented steps. Defaults follow the reference's round-1 semantics where it
    makes sense; where the reference has a known weak spot, the field says what it did."""

    # > the search
    rollouts: int = field(default=8, metadata={"help": "rollouts per problem (paper: 8 in round 1, 16 later)"})
    n_samples: int = field(default=4, metadata={"help": "samples (candidate children) per expansion"})
    c_uct: float = field(default=2.0, metadata={"help": "exploration constant c of Q + c*sqrt(ln N_parent / N)"})
    unvisited: str = field(default="zero", metadata={
        "help": "score of unvisited children: 'zero' (reference: no bonus, high-Q first) or 'infinite' (textbook UCT)"})
    max_depth: int = field(default=16, metadata={"help": "a non-answer step deeper than this ends as max_depth"})
    errors_threshold: int = field(default=2, metadata={"help": "consecutive failing code steps that end a branch"})
    answer_only_child: bool = field(default=True, metadata={
        "help": "if any sample answers, keep only the first answer as the only child (reference behaviour)"})
    backprop_failures: bool = field(default=True, metadata={
        "help": "back up -1 from code_error/max_depth/no_valid_child terminals to the root (reference: node only)"})
    answer_matches_output: bool = field(default=False, metadata={
        "help": "an answer that contradicts the last program output before it (steps.answer_matches_output) is a "
                "failed terminal, valued -1 without the grader or the PPM (reference: off, the answer is graded "
                "or scored as it is)"})
    ppm_init: bool = field(default=False, metadata={"help": "initialise Q of new steps with the PPM score (rounds 3-4)"})
    unsolved_rollouts: int = field(default=0, metadata={
        "help": "rollouts for problems no earlier round solved (round 4: more search for hard problems); 0 = rollouts"})
    max_problems_per_shard: int = field(default=0, metadata={
        "help": "search only the first N problems of each shard (a stable subset); 0 = all"})
    min_level: int = field(default=0, metadata={
        "help": "search only problems of at least this level (later rounds: the hard ones); problems without "
                "a level are kept; 0 = all"})
    # > step labels
    label_completions: int = field(default=0, metadata={
        "help": "Monte-Carlo completions sampled after each sibling step under the prefixes of a problem's best "
                "correct path; step pairs can then rank siblings by the share that reach a correct answer "
                "(pairs.step_labels: completions). 0 = off: labels are the tree's Q only (paper)"})
    label_prefixes: int = field(default=0, metadata={
        "help": "with label_completions: at most this many prefixes per problem, from the root down; 0 = all"})
    label_max_tokens: int = field(default=512, metadata={"help": "longest completion of the code block, tokens"})
    # > generation
    template: str = field(default="bootstrap", metadata={"help": "prompt template: a name in assets/prompts or a path"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    max_tokens: int = field(default=1024, metadata={"help": "longest step, tokens"})
    max_output_chars: int = field(default=1024, metadata={"help": "program output shown to the model is cut to this"})
    seed: int = field(default=0, metadata={"help": "search seed (sampling)"})

    def __post_init__(self):
        if self.rollouts < 1 or self.n_samples < 1 or self.max_depth < 1 or self.errors_threshold < 1:
            raise ValueError("search: rollouts, n_samples, max_depth and errors_threshold must be >= 1")
        if self.unvisited not in ("zero", "infinite"):
            raise ValueError(f"search: unvisited must be 'zero' or 'infinite', not {self.unvisited!r}")
        if self.c_uct < 0:
            raise ValueError("search: c_uct must be >= 0")
        if min(self.unsolved_rollouts, self.max_problems_per_shard, self.min_level, self.label_completions,
               self.label_prefixes) < 0 or self.label_max_tokens < 1:
            raise ValueError("search: unsolved_rollouts, max_problems_per_shard, min_level, label_completions and "
                             "label_prefixes must be >= 0, label_max_tokens >= 1")

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(n=self.n_samples, temperature=self.temperature, top_p=self.top_p,
                              max_tokens=self.max_tokens, stop=SEARCH_STOP, seed=self.seed)
