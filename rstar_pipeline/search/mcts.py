"""Lock-step MCTS over code-augmented steps (rStar-Math, reference §2).

One rollout descends from the root by UCT through expanded nodes, expands the node it reaches
with `n_samples` candidate steps, and goes on from there until the node it stands on has no
child left to explore (typically right after an answer is written). All trees of a batch advance
together: each iteration makes one `generate` call for every tree that needs an expansion, one
sandbox batch for all new code steps and, with a PPM, one scoring call, so that a GPU backend
sees large batches.

Values: an answer terminal backs up +1 (correct) or -1 (wrong) to the root; a failed terminal
(code_error, max_depth, no_valid_child) gets -1, backed up to the root unless
`backprop_failures` is off (the reference updates only the node). With `ppm_init`, every new
non-terminal step starts with one visit worth its PPM score. With `label_completions`, the steps
under a problem's best correct path also get Monte-Carlo labels after the search (`label`).
Deterministic for a given seed, generator and sandbox. Turning trees into training data is in
`extract`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from rstar_pipeline.grading import is_equivalent
from rstar_pipeline.llm.base import Completion, Generator, PPMScorer
from rstar_pipeline.problemsets import Problem
from rstar_pipeline.sandbox.base import ExecResult, Sandbox
from rstar_pipeline.search.config import SearchConfig
from rstar_pipeline.search.label import label_steps
from rstar_pipeline.search.select import select_child
from rstar_pipeline.search.tree import Node, Terminal, Tree
from rstar_pipeline.steps import (Step, StepKind, StepParseError, answer_matches_output, load_template, output_block,
                                  parse_step)

Grader = Callable[[str | None, Sequence[str]], bool]


@dataclass
class SearchStats:
    problems: int = 0
    nodes: int = 0
    iterations: int = 0  # lock-step iterations: one generate call each
    prompts: int = 0
    completions: int = 0
    parse_failures: int = 0
    duplicates: int = 0
    answer_mismatches: int = 0  # answer_matches_output: answers that contradict their program's output
    programs: int = 0
    generate_s: float = 0.0
    execute_s: float = 0.0
    score_s: float = 0.0
    labelled_steps: int = 0  # label_completions: steps completed and their completions
    label_completions: int = 0
    label_s: float = 0.0
    wall_s: float = 0.0
    failure_reasons: dict[str, int] = field(default_factory=dict)


def run_search(problems: Sequence[Problem], generator: Generator, sandbox: Sandbox, config: SearchConfig,
               scorer: PPMScorer | None = None, grader: Grader | None = is_equivalent,
               exec_timeout_s: float | None = None, rollouts: Sequence[int] | None = None
               ) -> tuple[list[Tree], SearchStats]:
    """Search every problem in lock-step; returns one tree per problem and the run's statistics.

    `rollouts` gives each problem its own rollout budget (default: `config.rollouts` for all).
    `grader=None` searches without ground truth (evaluation): an answer step is valued by the PPM,
    not by comparison with the problem's answers, and `is_correct` stays unset."""
    if config.ppm_init and scorer is None:
        raise ValueError("search: ppm_init is on but no PPM scorer was given")
    if grader is None and not config.ppm_init:
        raise ValueError("search without ground truth (grader=None) values answers by the PPM: set ppm_init")
    if grader is None and config.label_completions:
        raise ValueError("search: label_completions needs ground truth (a grader) to count correct completions")
    search = _Search(generator, sandbox, config, scorer, grader, exec_timeout_s)
    start = time.perf_counter()
    trees = [Tree(p) for p in problems]
    budgets = list(rollouts) if rollouts is not None else [config.rollouts] * len(trees)
    for rollout in range(max(budgets, default=0)):
        search.rollout([t for t, b in zip(trees, budgets) if b > rollout], rollout)
    if config.label_completions:
        labels = label_steps(trees, generator, sandbox, config, grader)
        search.stats.labelled_steps, search.stats.label_completions = labels.steps, labels.completions
        search.stats.label_s = labels.wall_s
    search.stats.problems = len(trees)
    search.stats.nodes = sum(len(t.nodes) for t in trees)
    search.stats.wall_s = time.perf_counter() - start
    return trees, search.stats


class _Search:
    def __init__(self, generator, sandbox, config: SearchConfig, scorer, grader, exec_timeout_s):
        self.generator, self.sandbox, self.config = generator, sandbox, config
        self.scorer, self.grader, self.exec_timeout_s = scorer, grader, exec_timeout_s
        self.template = load_template(config.template)
        self.stats = SearchStats()

    # ------------------------------------------------------------ one rollout, all trees

    def rollout(self, trees: list[Tree], rollout: int) -> None:
        cursors = {i: t.root for i, t in enumerate(trees) if not t.root.exhausted}
        fresh = set(cursors)  # trees that have not expanded anything in this rollout yet
        while cursors:
            targets = []
            for i, node in list(cursors.items()):
                leaf = self._descend(trees[i], node, restart=i in fresh)
                if leaf is None:
                    del cursors[i]
                else:
                    targets.append((trees[i], leaf))
                    cursors[i] = leaf
                    fresh.discard(i)
            if targets:
                self._expand(targets, rollout)

    def _descend(self, tree: Tree, node: Node, restart: bool) -> Node | None:
        """The next node to expand below `node`, or None when this rollout is over for the tree.

        A rollout that meets an exhausted subtree before expanding anything starts again from the
        root (each such restart marks one more node exhausted, so it ends).
        """
        while True:
            if node.is_terminal or node.exhausted:
                return None
            if not node.children:
                return node
            child = select_child(tree, node, self.config.c_uct, self.config.unvisited)
            if child is not None:
                node = child
                continue
            node.exhausted = True
            if not restart or tree.root.exhausted:
                return None
            node = tree.root

    # ------------------------------------------------------------ expansion of a batch

    def _expand(self, targets: list[tuple[Tree, Node]], rollout: int) -> None:
        self.stats.iterations += 1
        solutions = [t.solution_text(n) for t, n in targets]
        prompts = [self.template.build(t.problem.question, s) for (t, _), s in zip(targets, solutions)]
        t0 = time.perf_counter()
        outputs = self.generator.generate(prompts, self.config.sampling())
        self.stats.generate_s += time.perf_counter() - t0
        self.stats.prompts += len(prompts)
        candidates = []  # (tree, parent, step)
        for (tree, node), solution, completions in zip(targets, solutions, outputs):
            steps = self._candidates(completions, solution)
            if not steps:
                node.terminal = Terminal.NO_VALID_CHILD
                tree.backup(node, -1.0, recursive=self.config.backprop_failures)
            candidates += [(tree, node, s) for s in steps]
        results = self._execute(candidates)
        children = [self._add_child(tree, parent, step, results.get(i), rollout)
                    for i, (tree, parent, step) in enumerate(candidates)]
        self._init_values([(tree, c) for (tree, _, _), c in zip(candidates, children)])

    def _candidates(self, completions: list[Completion], solution: str) -> list[Step]:
        """Parsed, de-duplicated samples; with `answer_only_child`, one answer drives out the rest: with
        `answer_matches_output`, the first that agrees with the output above it (`solution`), if any, so
        that a right program is not lost to one mis-boxed sample when another boxed its output."""
        steps: dict[str, Step] = {}
        for c in completions:
            self.stats.completions += 1
            try:
                step = parse_step(c.text, c.stop)
            except StepParseError as e:
                self.stats.parse_failures += 1
                reason = str(e).split(":")[0]
                self.stats.failure_reasons[reason] = self.stats.failure_reasons.get(reason, 0) + 1
                continue
            if step.text in steps:
                self.stats.duplicates += 1
                continue
            steps[step.text] = step
        answers = [s for s in steps.values() if s.kind is StepKind.ANSWER]
        if self.config.answer_only_child and answers:
            if self.config.answer_matches_output:
                answers = [a for a in answers if answer_matches_output(solution, a.answer)] or answers
            return answers[:1]
        return list(steps.values())

    def _execute(self, candidates) -> dict[int, ExecResult]:
        """One sandbox batch for every code step of this iteration; keyed by candidate index."""
        code_idx = [i for i, (_, _, s) in enumerate(candidates) if s.kind is not StepKind.ANSWER]
        programs = [candidates[i][0].program(candidates[i][1], candidates[i][2].code) for i in code_idx]
        t0 = time.perf_counter()
        results = self.sandbox.run(programs, self.exec_timeout_s) if programs else []
        self.stats.execute_s += time.perf_counter() - t0
        self.stats.programs += len(programs)
        return dict(zip(code_idx, results))

    def _add_child(self, tree: Tree, parent: Node, step: Step, result: ExecResult | None, rollout: int) -> Node:
        if step.kind is StepKind.ANSWER:
            child = tree.add_child(parent, kind=step.kind.value, text=step.text, rollout=rollout,
                                   terminal=Terminal.ANSWER, final_answer=step.answer)
            if self.config.answer_matches_output and not answer_matches_output(tree.solution_text(parent), step.answer):
                self.stats.answer_mismatches += 1
                child.is_correct = False  # judged by its own execution: neither the grader nor the PPM values it
                tree.backup(child, -1.0)
                return child
            if self.grader is None:
                return child  # no ground truth: the PPM values it (_init_values)
            child.is_correct = bool(self.grader(step.answer, tree.problem.answers))
            tree.backup(child, 1.0 if child.is_correct else -1.0)
            return child
        output = result.stdout if result.ok else result.error_message
        text = step.text + (output_block(self._shown(output)) if step.kind is StepKind.CODE_END else "")
        errors = 0 if result.ok else parent.consecutive_errors + 1
        child = tree.add_child(parent, kind=step.kind.value, text=text, code=step.code, rollout=rollout,
                               exec_status=result.status.value, exec_output=output, consecutive_errors=errors)
        if errors >= self.config.errors_threshold:
            child.terminal = Terminal.CODE_ERROR
            if step.kind is StepKind.CODE:  # show the failure, as the <end_of_code> step does
                child.text += output_block(self._shown(output))
        elif child.depth > self.config.max_depth:
            child.terminal = Terminal.MAX_DEPTH
        if child.is_terminal:
            tree.backup(child, -1.0, recursive=self.config.backprop_failures)
        return child

    def _shown(self, output: str) -> str:
        """Program output as the model sees it: long output keeps its head and tail."""
        limit = self.config.max_output_chars
        if len(output) <= limit:
            return output
        return output[:limit // 2] + "\n...\n" + output[-limit // 2:]

    def _init_values(self, new: list[tuple[Tree, Node]]) -> None:
        """PPM-augmented Q: every new non-terminal step starts with one visit worth its PPM score."""
        if not self.config.ppm_init:
            return
        # answers without ground truth are valued by the PPM as well, unless the answer check judged them
        unjudged = self.grader is None
        fresh = [(t, n) for t, n in new
                 if not n.is_terminal or (unjudged and n.terminal == Terminal.ANSWER and n.is_correct is None)]
        if not fresh:
            return
        t0 = time.perf_counter()
        scores = self.scorer.score([self.template.build(t.problem.question, t.solution_text(n)) for t, n in fresh])
        self.stats.score_s += time.perf_counter() - t0
        for (tree, node), score in zip(fresh, scores):
            node.ppm_score = float(score)
            if node.is_terminal:
                tree.backup(node, float(score))  # an answer's PPM value goes up to the root
            else:
                node.update(float(score))
