"""MCTS arithmetic on small hand-computed trees: Q-values, visit counts, selection order,
terminal marking, pruning, PPM initialisation and lock-step batching.

The generator is a scripted fake (it plays back fixed steps for each partial solution) so that
trees are exact; code runs in the real local sandbox.
"""

import math

import pytest

from rstar_pipeline.llm.base import SamplingConfig, cut_at_stop
from rstar_pipeline.miniworld.teacher import BootstrapTeacher
from rstar_pipeline.problemsets import Problem, ProblemsConfig, load_problems
from rstar_pipeline.sandbox import SandboxConfig, make_sandbox
from rstar_pipeline.search.config import SearchConfig
from rstar_pipeline.search.mcts import run_search
from rstar_pipeline.search.select import select_child, uct_score
from rstar_pipeline.search.tree import Node, Terminal, Tree
from rstar_pipeline.steps import load_template

SFT = load_template("sft")
A = "<code>\n# Step 1: two\nx = 2\n<end_of_step>"
B = "<code>\n# Step 1: three\nx = 3\n<end_of_step>"
PRINT = "\n\n# Now print the final answer\nprint(x + 3)\n<end_of_code>"
PRINT2 = "\n\n# Now print the final answer, the other way round\nprint(3 + x)\n<end_of_code>"


def out(v):
    return f"\n<output>{v}<end_of_output>"


def ans(v):
    return f"\n<answer>The answer is \\boxed{{{v}}}.\n<end_of_answer>"


class ScriptedGenerator:
    """Fake generator: `script` maps a partial solution to the steps it returns (or is a callable)."""

    def __init__(self, script):
        self.script = script
        self.calls: list[int] = []

    def generate(self, prompts, sampling: SamplingConfig):
        self.calls.append(len(prompts))
        out_ = []
        for p in prompts:
            _, partial = SFT.split(p)
            texts = self.script(partial) if callable(self.script) else self.script[partial]
            out_.append([cut_at_stop(t, sampling.stop) for t in texts[:sampling.n]])
        return out_


class RecordingSandbox:
    """The real sandbox, recording batch sizes."""

    def __init__(self, inner):
        self.inner, self.batches = inner, []

    def run(self, programs, timeout_s=None):
        self.batches.append(len(programs))
        return self.inner.run(programs, timeout_s)

    def close(self):
        pass


class FixedScorer:
    """Fake PPM: a fixed score per last step text."""

    def __init__(self, scores):
        self.scores, self.calls = scores, []

    def score(self, prefixes):
        self.calls.append(len(prefixes))
        return [next(v for k, v in self.scores.items() if p.endswith(k)) for p in prefixes]


@pytest.fixture(scope="module")
def sandbox():
    with make_sandbox(SandboxConfig(timeout_s=5)) as sb:
        yield sb


def problem(answer="5", pid="p1", question="What is it?"):
    return Problem(pid, "test", "train", question, (answer,))


def search(script, sandbox, problems=None, **cfg):
    config = SearchConfig(**{"template": "sft", "n_samples": 2, "rollouts": 8, **cfg})
    gen = ScriptedGenerator(script)
    trees, stats = run_search(problems or [problem()], gen, sandbox, config)
    return trees, stats, gen


def by_text(tree: Tree, text: str) -> Node:
    return next(n for n in tree.nodes if n.text == text)


TWO_BRANCHES = {"": [A, B], A: [PRINT], B: [PRINT], A + PRINT + out(5): [ans(5)], B + PRINT + out(6): [ans(6)]}


def test_uct_score_matches_hand_computation():
    """Q + c*sqrt(ln N_parent / N): 0.5 + 2*sqrt(ln 4 / 2)."""
    parent, child = Node(0, None, 0, "root", visits=4), Node(1, 0, 1, "code", visits=2, value_sum=1.0)
    assert uct_score(child, parent, 2.0, "zero") == pytest.approx(0.5 + 2 * math.sqrt(math.log(4) / 2))


def test_unvisited_child_scores_zero_or_infinity():
    """Reference semantics: an unvisited child scores 0; textbook: infinity."""
    parent, child = Node(0, None, 0, "root", visits=3), Node(1, 0, 1, "code")
    assert uct_score(child, parent, 2.0, "zero") == 0.0
    assert uct_score(child, parent, 2.0, "infinite") == math.inf


def test_selection_skips_terminals_and_breaks_ties_by_order():
    """Terminal and exhausted children are never chosen; equal scores go to the first child."""
    tree = Tree(problem())
    root = tree.root
    t = tree.add_child(root, kind="answer", terminal=Terminal.ANSWER)
    e = tree.add_child(root, kind="code")
    e.exhausted = True
    first, second = tree.add_child(root, kind="code"), tree.add_child(root, kind="code")
    assert select_child(tree, root, 2.0, "zero") is first
    second.update(-0.5)
    root.update(-0.5)
    assert select_child(tree, root, 2.0, "zero") is first  # 0 > -0.5 + 2*sqrt(ln1/1) = -0.5
    for n in (first, second):
        n.exhausted = True
    assert select_child(tree, root, 2.0, "zero") is None
    assert t.is_terminal


def test_terminal_guided_q_values_and_visits(sandbox):
    """Two branches, one right (+1) and one wrong (-1): exact N, Q and creation order."""
    (tree,), stats, gen = search(TWO_BRANCHES, sandbox)
    a, b = by_text(tree, A), by_text(tree, B)
    a_end, b_end = tree.nodes[a.children[0]], tree.nodes[b.children[0]]
    assert (tree.root.visits, tree.root.value_sum) == (2, 0.0)
    assert (a.visits, a.q, b.visits, b.q) == (1, 1.0, 1, -1.0)
    assert a_end.exec_output.strip() == "5" and b_end.exec_output.strip() == "6"
    answers = [n for n in tree.nodes if n.terminal == Terminal.ANSWER]
    assert [(n.final_answer, n.is_correct, n.q) for n in answers] == [("5", True, 1.0), ("6", False, -1.0)]
    assert [n.rollout for n in tree.nodes] == [-1, 0, 0, 0, 0, 1, 1]  # B's subtree waits for rollout 1
    assert tree.root.exhausted and gen.calls == [1, 1, 1, 1, 1]  # 5 expansions, then nothing left


DEEPER_A = {**TWO_BRANCHES, A: [PRINT, PRINT2], A + PRINT2 + out(5): [ans(5)]}


def test_reference_selection_stays_on_high_q_branch(sandbox):
    """'zero': an unvisited sibling waits while the visited branch scores above 0."""
    (tree,), _, _ = search(DEEPER_A, sandbox, rollouts=3)
    b = by_text(tree, B)
    assert [tree.nodes[c].rollout for c in b.children] == [2]
    a = by_text(tree, A)
    assert (a.visits, a.q) == (2, 1.0)
    assert (tree.root.visits, tree.root.value_sum) == (3, 1.0)
    assert tree.root.q == pytest.approx(1 / 3)


def test_textbook_selection_tries_unvisited_first(sandbox):
    """'infinite': the unvisited sibling B is expanded in rollout 1, before A's second child."""
    (tree,), _, _ = search(DEEPER_A, sandbox, rollouts=2, unvisited="infinite")
    b = by_text(tree, B)
    assert [tree.nodes[c].rollout for c in b.children] == [1]
    assert by_text(tree, A).visits == 1


def test_ppm_init_q_values(sandbox):
    """PPM-augmented: Q starts at the PPM score; a correct answer below gives (0.8 + 1) / 2 = 0.9."""
    scorer = FixedScorer({A: 0.8, B: -0.4, PRINT + out(5): 0.5, PRINT + out(6): 0.1})
    config = SearchConfig(template="sft", n_samples=2, rollouts=1, ppm_init=True)
    (tree,), stats = run_search([problem()], ScriptedGenerator(TWO_BRANCHES), sandbox, config, scorer=scorer)
    a, b = by_text(tree, A), by_text(tree, B)
    assert (a.ppm_score, a.visits, a.q) == (0.8, 2, pytest.approx(0.9))
    assert (b.ppm_score, b.visits, b.q) == (-0.4, 1, -0.4)
    a_end = tree.nodes[a.children[0]]
    assert (a_end.visits, a_end.q) == (2, pytest.approx(0.75))
    assert (tree.root.visits, tree.root.q) == (1, 1.0)
    assert scorer.calls == [2, 1]  # answers are terminals: never scored


def test_search_without_ground_truth_values_answers_by_the_ppm(sandbox):
    """Evaluation search (grader=None): an answer is valued by its PPM score, not by the reference, so
    the wrong answer 6 can win when the PPM prefers it; is_correct stays unset."""
    scorer = FixedScorer({A: 0.1, B: 0.2, PRINT + out(5): 0.1, PRINT + out(6): 0.2, ans(5): -0.6, ans(6): 0.7})
    config = SearchConfig(template="sft", n_samples=2, rollouts=4, ppm_init=True)
    (tree,), _ = run_search([problem("5")], ScriptedGenerator(TWO_BRANCHES), sandbox, config, scorer=scorer,
                            grader=None)
    answers = {n.final_answer: n for n in tree.nodes if n.terminal == Terminal.ANSWER}
    assert {a: (n.ppm_score, n.q, n.is_correct) for a, n in answers.items()} == {
        "5": (-0.6, -0.6, None), "6": (0.7, 0.7, None)}
    assert max(answers.values(), key=lambda n: n.q).final_answer == "6"
    with pytest.raises(ValueError, match="ground truth"):
        run_search([problem()], ScriptedGenerator(TWO_BRANCHES), sandbox, SearchConfig(template="sft"), grader=None)


def test_an_answer_that_contradicts_its_output_is_a_failed_terminal(sandbox):
    """answer_matches_output: branch B prints 6 but answers 9; without ground truth that answer is valued
    -1 (not by the PPM, which prefers it) and counted, so the consistent answer 5 of branch A has the higher Q."""
    script = {"": [A, B], A: [PRINT], B: [PRINT], A + PRINT + out(5): [ans(5)], B + PRINT + out(6): [ans(9)]}
    scorer = FixedScorer({A: 0.1, B: 0.2, PRINT + out(5): 0.1, PRINT + out(6): 0.2, ans(5): 0.1, ans(9): 0.9})
    config = SearchConfig(template="sft", n_samples=2, rollouts=4, ppm_init=True, answer_matches_output=True)
    (tree,), stats = run_search([problem("5")], ScriptedGenerator(script), sandbox, config, scorer=scorer, grader=None)
    answers = {n.final_answer: n for n in tree.nodes if n.terminal == Terminal.ANSWER}
    assert {a: (n.ppm_score, n.q, n.is_correct) for a, n in answers.items()} == {
        "5": (0.1, 0.1, None), "9": (None, -1.0, False)}
    assert stats.answer_mismatches == 1
    (tree,), stats = run_search([problem("5")], ScriptedGenerator(script), sandbox,
                                SearchConfig(template="sft", n_samples=2, rollouts=4, ppm_init=True),
                                scorer=scorer, grader=None)
    assert max((n for n in tree.nodes if n.terminal == Terminal.ANSWER), key=lambda n: n.q).final_answer == "9"
    assert stats.answer_mismatches == 0  # off (the reference): the PPM's choice stands


def test_ppm_init_needs_a_scorer(sandbox):
    """ppm_init without a scorer is a configuration error, not a silent fallback."""
    with pytest.raises(ValueError, match="PPM scorer"):
        search(TWO_BRANCHES, sandbox, ppm_init=True)


FAIL = "<code>\n# Step 1: divide\nx = 1 / 0\n<end_of_step>"
AFTER_FAIL = "\n\n# Step 2: go on\ny = 2\n<end_of_step>"


@pytest.mark.parametrize("backprop", [True, False])
def test_code_error_terminal(sandbox, backprop):
    """errors_threshold=1: a failing step is a code_error terminal worth -1 (backed up if configured)."""
    (tree,), _, _ = search({"": [FAIL]}, sandbox, errors_threshold=1, backprop_failures=backprop)
    child = tree.nodes[1]
    assert child.terminal == Terminal.CODE_ERROR and child.exec_status == "error"
    assert child.exec_output == "ZeroDivisionError: division by zero"
    assert child.text.endswith(out("ZeroDivisionError: division by zero"))
    assert (child.visits, child.q) == (1, -1.0)
    assert tree.root.visits == (1 if backprop else 0)


def test_error_tolerated_below_threshold(sandbox):
    """errors_threshold=2: the first failure continues; the next step re-runs it and ends the branch."""
    (tree,), _, _ = search({"": [FAIL], FAIL: [AFTER_FAIL]}, sandbox, errors_threshold=2, rollouts=1)
    first, second = tree.nodes[1], tree.nodes[2]
    assert (first.terminal, first.consecutive_errors) == (Terminal.NONE, 1)
    assert (second.terminal, second.consecutive_errors, second.depth) == (Terminal.CODE_ERROR, 2, 2)


def counting_steps(partial: str) -> list[str]:
    k = partial.count("<end_of_step>")
    return [("<code>" if k == 0 else "\n\n") + f"# Step {k + 1}\nx = {k + 1}\n<end_of_step>"]


def test_max_depth_terminal(sandbox):
    """A code step deeper than max_depth ends the branch as max_depth with -1."""
    (tree,), _, _ = search(counting_steps, sandbox, max_depth=3, rollouts=1)
    assert [n.depth for n in tree.nodes] == [0, 1, 2, 3, 4]
    assert tree.nodes[-1].terminal == Terminal.MAX_DEPTH and tree.nodes[-1].q == -1.0
    assert all(not n.is_terminal for n in tree.nodes[:-1])


def test_unparsable_samples_make_no_valid_child(sandbox):
    """Text with no step tags is dropped; a node with no valid sample becomes a no_valid_child terminal."""
    (tree,), stats, _ = search({"": ["just words, no tags"]}, sandbox)
    assert len(tree.nodes) == 1 and tree.root.terminal == Terminal.NO_VALID_CHILD
    assert stats.parse_failures == 1 and tree.root.q == -1.0


def test_answer_only_child_and_dedup(sandbox):
    """Duplicates collapse; with answer_only_child the first answer drives out every other sample."""
    script = {"": [A, A, ans(5), ans(7)], A: [ans(5)]}
    (tree,), stats, _ = search(script, sandbox, n_samples=4, rollouts=1)
    assert [n.final_answer for n in tree.nodes[1:]] == ["5"] and stats.duplicates == 1
    (tree,), _, _ = search(script, sandbox, n_samples=4, rollouts=1, answer_only_child=False)
    assert [n.kind for n in tree.nodes[1:4]] == ["code", "answer", "answer"]  # then A gets its answer


def test_answer_only_child_prefers_an_answer_that_agrees_with_the_output(sandbox):
    """With answer_matches_output, the answer that drives out the rest is the first that boxes the printed
    value (9 is sampled first, 5 agrees with the output 5); without it, the first answer, as the reference."""
    script = {"": [A], A: [PRINT], A + PRINT + out(5): [ans(9), ans(5)]}
    (tree,), stats, _ = search(script, sandbox, n_samples=2, rollouts=3, answer_matches_output=True)
    assert [n.final_answer for n in tree.nodes if n.terminal == Terminal.ANSWER] == ["5"]
    assert stats.answer_mismatches == 0
    (tree,), stats, _ = search(script, sandbox, n_samples=2, rollouts=3, answer_matches_output=True,
                               answer_only_child=False)
    assert sorted(n.final_answer for n in tree.nodes if n.terminal == Terminal.ANSWER) == ["5", "9"]
    assert stats.answer_mismatches == 1
    (tree,), _, _ = search(script, sandbox, n_samples=2, rollouts=3)
    assert [n.final_answer for n in tree.nodes if n.terminal == Terminal.ANSWER] == ["9"]


def test_lock_step_batches(sandbox):
    """All trees expand together: one generate call and one sandbox batch per iteration."""
    rec = RecordingSandbox(sandbox)
    problems = [problem(pid=f"p{i}", question=f"Q{i}") for i in range(3)]
    gen = ScriptedGenerator(TWO_BRANCHES)
    run_search(problems, gen, rec, SearchConfig(template="sft", n_samples=2, rollouts=2))
    assert gen.calls == [3] * 5
    assert rec.batches == [6, 3, 3]  # 3 trees x (A, B); then A's and B's print steps


def test_search_is_deterministic_and_order_independent(sandbox):
    """Same seed, same trees, whatever the batch composition."""
    probs, _ = load_problems(ProblemsConfig(count=12, seed=3))
    config = SearchConfig(rollouts=4, n_samples=3)
    t1, _ = run_search(probs, BootstrapTeacher(), sandbox, config)
    t2, _ = run_search(probs[::-1], BootstrapTeacher(), sandbox, config)
    rows1 = {t.problem.problem_id: t.rows() for t in t1}
    rows2 = {t.problem.problem_id: t.rows() for t in t2}
    assert rows1 == rows2
    t3, _ = run_search(probs, BootstrapTeacher(), sandbox, SearchConfig(rollouts=4, n_samples=3, seed=1))
    assert [t.rows() for t in t3] != [t.rows() for t in t1]


def test_one_unreadable_problem_does_not_sink_the_batch(sandbox):
    """A problem the generator cannot handle ends as no_valid_child; the others are searched."""
    good, _ = load_problems(ProblemsConfig(count=3))
    bad = problem(pid="bad", question="Prove that there are infinitely many primes.")
    trees, _ = run_search(good + [bad], BootstrapTeacher(), sandbox, SearchConfig(rollouts=2))
    assert trees[-1].root.terminal == Terminal.NO_VALID_CHILD
    assert all(len(t.nodes) > 1 for t in trees[:-1])


def test_config_validation():
    """Bad search settings fail fast with the field named."""
    with pytest.raises(ValueError, match="unvisited"):
        SearchConfig(unvisited="sometimes")
    with pytest.raises(ValueError, match="rollouts"):
        SearchConfig(rollouts=0)
