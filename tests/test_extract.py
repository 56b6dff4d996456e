"""Tests of `rstar_pipeline.search.extract`: trajectories, step pairs and final pairs from tree rows.

Every tree is written by hand; Q values are binary fractions (0.25, 0.375, ...) so means, ties and
margins are exact. Expected values are computed by hand from the rStar-Math recipe.
"""

import hashlib

import pyarrow as pa
import pytest

from rstar_pipeline.search.extract import PairConfig, TrajectoryConfig, preference_pairs, trajectories
from rstar_pipeline.warehouse.schemas import PREFERENCE_PAIRS, TRAJECTORIES, TREE_NODES

PROMPT = "<question>Ann has 3 apples and buys 7 more. How many?</question>\n"
STEP_ONLY = PairConfig(final_pairs=False)


def text(node_id: int) -> str:
    """A step text far (edit distance > 30) from every other node's text."""
    digest = hashlib.sha256(str(node_id).encode()).hexdigest()[:40]
    return f"\n\n# Step {node_id}: let v = {digest}\n<end_of_step>"


def node(node_id, parent_id, depth, q=0.0, *, terminal_kind="none", is_correct=None, exec_status="ok",
         step_text=None, problem_id="p1"):
    """One `tree_nodes` row; everything not stated gets a neutral default."""
    is_root = parent_id is None
    is_answer = terminal_kind == "answer"
    return {
        "round": 1, "shard": "s0", "problem_id": problem_id, "node_id": node_id, "parent_id": parent_id,
        "depth": depth, "kind": "root" if is_root else ("answer" if is_answer else "code"),
        "step_text": "" if is_root else (text(node_id) if step_text is None else step_text),
        "code": None, "exec_status": None if (is_root or is_answer) else exec_status, "exec_output": None,
        "terminal_kind": terminal_kind, "final_answer": ("10" if is_correct else "11") if is_answer else None,
        "is_correct": is_correct, "visits": 1, "value_sum": q, "q_value": q, "ppm_score": 0.0,
        "consecutive_errors": 0, "created_rollout": 0, "n_children": 0, "mc_samples": None, "mc_correct": None,
    }


def root(problem_id="p1"):
    """The root of a problem's tree (empty step text, no Q)."""
    return node(0, None, 0, problem_id=problem_id)


def answer(node_id, parent_id, depth, q, correct, **kw):
    """A terminal answer node, right or wrong."""
    return node(node_id, parent_id, depth, q, terminal_kind="answer", is_correct=correct, **kw)


def nodes_table(rows):
    return pa.Table.from_pylist(rows, schema=TREE_NODES)


def prompts_table(mapping=None):
    mapping = mapping or {"p1": PROMPT}
    return pa.table({"problem_id": pa.array(list(mapping), pa.string()),
                     "prompt": pa.array(list(mapping.values()), pa.string())})


def traj(rows, config=TrajectoryConfig(), prompts=None):
    """Trajectory rows keyed by (problem_id, leaf_node_id)."""
    table = trajectories(nodes_table(rows), prompts_table(prompts), config)
    return {(r["problem_id"], r["leaf_node_id"]): r for r in table.to_pylist()}


def pairs(rows, config=STEP_ONLY, kind=None):
    """Pair rows, optionally of one kind, in the function's output order."""
    out = preference_pairs(nodes_table(rows), prompts_table(), config).to_pylist()
    return [r for r in out if kind is None or r["kind"] == kind]


def keys(rows):
    return [(r["prefix_node_id"], r["chosen_node_id"], r["rejected_node_id"]) for r in rows]


# ---------------------------------------------------------------- trajectories


def test_trajectory_path_columns():
    """A root-to-leaf path lists its non-root nodes, joins steps, and averages/minimises their Q."""
    rows = [root(), node(1, 0, 1, 0.5), node(2, 1, 2, 0.25), answer(3, 2, 3, 0.75, True)]
    t = traj(rows)
    assert list(t) == [("p1", 3)]
    r = t[("p1", 3)]
    assert r["node_ids"] == [1, 2, 3]
    assert r["steps"] == [text(1), text(2), text(3)]
    assert r["response"] == text(1) + text(2) + text(3)
    assert r["n_steps"] == 3
    assert r["mean_q"] == 0.5  # (0.5 + 0.25 + 0.75) / 3
    assert r["min_q"] == 0.25
    assert r["prompt"] == PROMPT
    assert r["is_correct"] is True and r["has_exec_error"] is False
    assert r["terminal_kind"] == "answer" and r["final_answer"] == "10"


def test_trajectory_one_row_per_terminal_leaf():
    """Every terminal kind (answer, code_error, max_depth, no_valid_child) is a trajectory; 'none' nodes are not."""
    rows = [root(), node(1, 0, 1), answer(2, 1, 2, 0.5, False),
            node(3, 1, 2, -0.5, terminal_kind="code_error", exec_status="error"),
            node(4, 0, 1, terminal_kind="max_depth"), node(5, 0, 1, terminal_kind="no_valid_child")]
    t = traj(rows)
    assert sorted(leaf for _, leaf in t) == [2, 3, 4, 5]
    assert {leaf: r["terminal_kind"] for (_, leaf), r in t.items()} == {
        2: "answer", 3: "code_error", 4: "max_depth", 5: "no_valid_child"}
    assert not any(r["is_correct"] for r in t.values())


def test_trajectory_is_correct_only_for_correct_answer_leaf():
    """is_correct is true only for an answer leaf marked correct; a non-answer leaf with is_correct stays false."""
    rows = [root(), answer(1, 0, 1, 0.5, True), answer(2, 0, 1, 0.5, False), answer(3, 0, 1, 0.5, None),
            node(4, 0, 1, 0.5, terminal_kind="max_depth", is_correct=True)]
    t = traj(rows)
    assert {leaf: r["is_correct"] for (_, leaf), r in t.items()} == {1: True, 2: False, 3: False, 4: False}


def test_trajectory_has_exec_error_anywhere_on_path():
    """An exec status other than 'ok' on any path node marks the trajectory; null (answers) does not."""
    rows = [root(), node(1, 0, 1, exec_status="timeout"), node(2, 1, 2), answer(3, 2, 3, 0.5, True),
            node(4, 0, 1), node(5, 4, 2), answer(6, 5, 3, 0.5, True)]
    t = traj(rows)
    assert t[("p1", 3)]["has_exec_error"] is True
    assert t[("p1", 6)]["has_exec_error"] is False


def test_sft_top2_by_mean_then_min_q():
    """The two best correct paths by mean Q are selected; a mean-Q tie is broken by min Q."""
    rows = [root(),
            node(1, 0, 1, 0.5), answer(5, 1, 2, 1.0, True),       # mean 0.75, min 0.5
            node(2, 0, 1, 0.625), answer(6, 2, 2, 0.875, True),   # mean 0.75, min 0.625
            node(3, 0, 1, 0.875), answer(7, 3, 2, 0.875, True),   # mean 0.875
            node(4, 0, 1, 0.25), answer(8, 4, 2, 0.5, True)]      # mean 0.375
    t = traj(rows)
    assert {leaf: r["rank"] for (_, leaf), r in t.items()} == {7: 1, 6: 2, 5: 3, 8: 4}
    assert sorted(leaf for (_, leaf), r in t.items() if r["selected_for_sft"]) == [6, 7]


def test_rank_puts_correct_clean_paths_before_higher_q_wrong_ones():
    """A wrong path with higher Q still ranks after every correct error-free path and is not selected."""
    rows = [root(), node(1, 0, 1, 1.0), answer(2, 1, 2, 1.0, False),
            node(3, 0, 1, 0.25), answer(4, 3, 2, 0.25, True)]
    t = traj(rows)
    assert t[("p1", 4)]["rank"] == 1 and t[("p1", 4)]["selected_for_sft"] is True
    assert t[("p1", 2)]["rank"] == 2 and t[("p1", 2)]["selected_for_sft"] is False


def test_correct_path_with_exec_error_never_selected():
    """A correct answer reached through a failed execution is ranked after clean ones and never selected."""
    rows = [root(), node(1, 0, 1, 1.0, exec_status="error"), answer(2, 1, 2, 1.0, True),
            node(3, 0, 1, 0.25), answer(4, 3, 2, 0.25, True)]
    t = traj(rows, TrajectoryConfig(sft_top_k=2))
    bad = t[("p1", 2)]
    assert bad["is_correct"] is True and bad["has_exec_error"] is True
    assert bad["rank"] == 2 and bad["selected_for_sft"] is False
    assert t[("p1", 4)]["rank"] == 1 and t[("p1", 4)]["selected_for_sft"] is True


def test_sft_top_k_1():
    """sft_top_k=1 selects only the best correct clean path."""
    rows = [root(), answer(1, 0, 1, 0.5, True), answer(2, 0, 1, 0.75, True), answer(3, 0, 1, 0.25, True)]
    t = traj(rows, TrajectoryConfig(sft_top_k=1))
    assert [leaf for (_, leaf), r in t.items() if r["selected_for_sft"]] == [2]


def test_trajectory_prompt_and_rank_per_problem():
    """Each trajectory takes its own problem's prompt, and ranks restart per problem."""
    rows = [root("p1"), answer(1, 0, 1, 0.5, True, problem_id="p1"),
            root("p2"), answer(1, 0, 1, 0.25, True, problem_id="p2"),
            answer(2, 0, 1, 0.75, True, problem_id="p2")]
    t = traj(rows, prompts={"p1": "first question\n", "p2": "second question\n"})
    assert t[("p1", 1)]["prompt"] == "first question\n"
    assert t[("p2", 1)]["prompt"] == t[("p2", 2)]["prompt"] == "second question\n"
    assert (t[("p1", 1)]["rank"], t[("p2", 2)]["rank"], t[("p2", 1)]["rank"]) == (1, 1, 2)


def test_trajectories_empty_input():
    """No nodes gives an empty table with the TRAJECTORIES schema."""
    out = trajectories(TREE_NODES.empty_table(), prompts_table({}), TrajectoryConfig())
    assert out.num_rows == 0
    assert out.schema == TRAJECTORIES


# ---------------------------------------------------------------- step pairs


def test_step_pairs_2x2():
    """With 3 positives and 3 negatives, the 2 highest-Q positives pair with the 2 lowest-Q negatives."""
    rows = [root(),
            answer(1, 0, 1, 0.75, True), answer(2, 0, 1, 1.0, True), answer(3, 0, 1, 0.5, True),
            answer(4, 0, 1, -0.5, False), answer(5, 0, 1, -1.0, False), answer(6, 0, 1, 0.0, False)]
    out = pairs(rows)
    assert keys(out) == [(0, 1, 4), (0, 1, 5), (0, 2, 4), (0, 2, 5)]
    assert all(r["kind"] == "step" for r in out)
    assert {(r["pos_count"], r["neg_count"], r["weight"]) for r in out} == {(2, 2, 0.25)}
    r = out[2]
    assert (r["chosen"], r["rejected"], r["q_chosen"], r["q_rejected"]) == (text(2), text(4), 1.0, -0.5)


def test_step_pairs_1x4_caps_negatives():
    """One positive pairs with the 4 lowest-Q of 5 negatives."""
    rows = [root(), answer(1, 0, 1, 1.0, True),
            answer(2, 0, 1, 0.0, False), answer(3, 0, 1, -0.25, False), answer(4, 0, 1, -0.5, False),
            answer(5, 0, 1, -0.75, False), answer(6, 0, 1, -1.0, False)]
    out = pairs(rows)
    assert keys(out) == [(0, 1, 3), (0, 1, 4), (0, 1, 5), (0, 1, 6)]
    assert {(r["pos_count"], r["neg_count"], r["weight"]) for r in out} == {(1, 4, 0.25)}


def test_step_pairs_4x1_caps_positives():
    """One negative pairs with the 4 highest-Q of 5 positives."""
    rows = [root(), answer(1, 0, 1, 0.0, True), answer(2, 0, 1, 0.25, True), answer(3, 0, 1, 0.5, True),
            answer(4, 0, 1, 0.75, True), answer(5, 0, 1, 1.0, True), answer(6, 0, 1, -1.0, False)]
    out = pairs(rows)
    assert keys(out) == [(0, 2, 6), (0, 3, 6), (0, 4, 6), (0, 5, 6)]
    assert {(r["pos_count"], r["neg_count"], r["weight"]) for r in out} == {(4, 1, 0.25)}


def test_step_pairs_use_subtree_outcomes():
    """A child is positive/negative by the answer leaves in its subtree; code_error leaves are neither."""
    rows = [root(),
            node(1, 0, 1, 0.75), node(2, 1, 2, 0.75), answer(3, 2, 3, 0.75, True),   # correct 2 levels down
            node(4, 0, 1, -0.75), answer(5, 4, 2, -0.75, False),                     # wrong below
            node(6, 0, 1, -1.0), node(7, 6, 2, -1.0, terminal_kind="code_error", exec_status="error")]
    assert keys(pairs(rows)) == [(0, 1, 4)]


def test_step_pairs_code_error_leaf_is_not_negative():
    """A code_error leaf child is not a negative, even with the lowest Q."""
    rows = [root(), answer(1, 0, 1, 1.0, True),
            node(2, 0, 1, -1.0, terminal_kind="code_error", exec_status="error"),
            answer(3, 0, 1, -0.5, False)]
    out = pairs(rows)
    assert keys(out) == [(0, 1, 3)]
    assert (out[0]["pos_count"], out[0]["neg_count"], out[0]["weight"]) == (1, 1, 1.0)


def test_step_pairs_margin_filter():
    """A pair at Q margin 0.49 is dropped and one at exactly 0.5 is kept."""
    rows = [root(), answer(1, 0, 1, 0.75, True), answer(2, 0, 1, 0.25, False), answer(3, 0, 1, 0.26, False)]
    out = pairs(rows)
    assert keys(out) == [(0, 1, 2)]
    assert out[0]["q_chosen"] - out[0]["q_rejected"] == 0.5


def test_step_pairs_margin_is_not_fooled_by_float_rounding():
    """0.7 - 0.2 is 0.49999999999999994 in floating point: still a margin of 0.5."""
    rows = [root(), answer(1, 0, 1, 0.7, True), answer(2, 0, 1, 0.2, False)]
    assert keys(pairs(rows)) == [(0, 1, 2)]


def test_step_pairs_edit_distance_filter():
    """A rejected step 2 edits away from the chosen one is dropped at min_edit_distance=20, kept at 2."""
    good = "\n\n# Step 2: add the 7 apples she buys\nx = x + 7\n<end_of_step>"
    near = "\n\n# Step 2: add the 8 apples she buys\nx = x + 8\n<end_of_step>"
    rows = [root(), answer(1, 0, 1, 1.0, True, step_text=good), answer(2, 0, 1, -1.0, False, step_text=near),
            answer(3, 0, 1, -0.5, False)]
    assert keys(pairs(rows)) == [(0, 1, 3)]
    out = pairs(rows, PairConfig(final_pairs=False, min_edit_distance=2))
    assert keys(out) == [(0, 1, 2), (0, 1, 3)]
    assert out[0]["edit_distance"] == 2


def test_step_pair_weight_uses_counts_before_filters():
    """pos_count/neg_count are the selected group sizes before filtering: 3x1 gives weight 1/3 even if pairs drop."""
    rows = [root(), answer(1, 0, 1, 1.0, True), answer(2, 0, 1, 0.75, True), answer(3, 0, 1, 0.25, True),
            answer(4, 0, 1, 0.0, False)]  # (3, 4) has margin 0.25 and is dropped
    out = pairs(rows)
    assert keys(out) == [(0, 1, 4), (0, 2, 4)]
    for r in out:
        assert (r["pos_count"], r["neg_count"]) == (3, 1)
        assert r["weight"] == pytest.approx(1 / 3)


def test_step_pair_prompt_at_root():
    """Under the root the pair's prompt is the problem prompt alone (the root adds no text)."""
    rows = [root(), answer(1, 0, 1, 1.0, True), answer(2, 0, 1, -1.0, False)]
    (r,) = pairs(rows)
    assert r["prompt"] == PROMPT
    assert r["prefix_node_id"] == 0


def test_step_pairs_need_a_shared_parent():
    """Nodes under different parents never pair; only their parents, siblings under the root, do."""
    rows = [root(), node(1, 0, 1, 1.0), answer(3, 1, 2, 1.0, True),
            node(2, 0, 1, -1.0), answer(4, 2, 2, -1.0, False)]
    assert keys(pairs(rows)) == [(0, 1, 2)]


def test_step_pairs_under_deeper_prefix():
    """Children of a depth-2 node pair with prefix_node_id = that node and the prompt extended by its path's steps."""
    rows = [root(), node(1, 0, 1, 0.25), node(2, 1, 2, 0.25),
            answer(3, 2, 3, 1.0, True), answer(4, 2, 3, -1.0, False)]
    (r,) = pairs(rows)  # nodes 1 and 2 lead to both outcomes but have no sibling
    assert (r["prefix_node_id"], r["chosen_node_id"], r["rejected_node_id"]) == (2, 3, 4)
    assert r["prompt"] == PROMPT + text(1) + text(2)
    assert (r["chosen"], r["rejected"]) == (text(3), text(4))


def test_step_pairs_child_never_pairs_with_itself():
    """A child leading to both outcomes is a positive and a negative but is never paired with itself."""
    rows = [root(), node(1, 0, 1, 0.75), answer(3, 1, 2, 1.0, True), answer(4, 1, 2, -1.0, False),
            answer(2, 0, 1, -0.5, False)]
    out = pairs(rows, PairConfig(final_pairs=False, min_margin=0.0, min_edit_distance=0))  # filters off
    assert keys(out) == [(0, 1, 2), (1, 3, 4)]
    assert (out[0]["pos_count"], out[0]["neg_count"], out[0]["weight"]) == (1, 2, 0.5)
    assert (out[1]["pos_count"], out[1]["neg_count"], out[1]["weight"]) == (1, 1, 1.0)


def test_step_pairs_stay_within_their_problem():
    """Two problems reusing node ids each get their own pairs and prompt."""
    rows = [root("p1"), answer(1, 0, 1, 1.0, True, problem_id="p1"), answer(2, 0, 1, -1.0, False, problem_id="p1"),
            root("p2"), answer(1, 0, 1, -1.0, False, problem_id="p2"), answer(2, 0, 1, 1.0, True, problem_id="p2")]
    prompts = prompts_table({"p1": "first\n", "p2": "second\n"})
    out = preference_pairs(nodes_table(rows), prompts, STEP_ONLY).to_pylist()
    assert [(r["problem_id"], r["chosen_node_id"], r["rejected_node_id"], r["prompt"]) for r in out] == [
        ("p1", 1, 2, "first\n"), ("p2", 2, 1, "second\n")]


MC_ONLY = PairConfig(final_pairs=False, step_labels="completions", min_margin=0.75)


def labelled(node_id, parent_id, depth, correct, samples=4, q=0.0):
    """A code step with `correct` of `samples` Monte-Carlo completions correct."""
    row = node(node_id, parent_id, depth, q)
    row["mc_samples"], row["mc_correct"] = samples, correct
    return row


def test_completion_labels_rank_siblings_by_their_share_of_correct_completions():
    """With step_labels 'completions', siblings rank by the share of correct completions, not by Q or the
    answers below them; the margin applies to that share and it is what q_chosen/q_rejected record."""
    rows = [root(),
            labelled(1, 0, 1, 4, q=-1.0), answer(2, 1, 2, -1.0, False),   # Q and its leaf say wrong: completions say right
            labelled(3, 0, 1, 0, q=1.0), answer(4, 3, 2, 1.0, True),      # and the other way round
            labelled(5, 0, 1, 1), labelled(6, 0, 1, 3)]                   # 0.25 and 0.75: 6 vs 5 is within the margin
    out = pairs(rows, MC_ONLY)
    assert keys(out) == [(0, 1, 3), (0, 1, 5), (0, 6, 3)]
    assert [(r["q_chosen"], r["q_rejected"]) for r in out] == [(1.0, 0.0), (1.0, 0.25), (0.75, 0.0)]
    assert keys(pairs(rows)) == [(0, 3, 1)]  # the tree's Q and outcomes: the opposite label


def test_completion_labels_count_a_failed_child_as_wrong_and_skip_unlabelled_prefixes():
    """A code_error child under a labelled prefix is a rejected step (share 0); a prefix whose children have
    no completions gives no step pair, whatever their Q."""
    rows = [root(),
            labelled(1, 0, 1, 3), node(2, 0, 1, -1.0, terminal_kind="code_error", exec_status="error"),
            node(3, 1, 2, 1.0), answer(4, 3, 3, 1.0, True), node(5, 1, 2, -1.0), answer(6, 5, 3, -1.0, False)]
    assert keys(pairs(rows, MC_ONLY)) == [(0, 1, 2)]
    assert keys(pairs(rows)) == [(1, 3, 5)]


def test_completion_labels_without_completions_in_the_trees_is_an_error():
    rows = [root(), answer(1, 0, 1, 1.0, True), answer(2, 0, 1, -1.0, False)]
    with pytest.raises(ValueError, match="no Monte-Carlo labels"):
        pairs(rows, MC_ONLY)
    with pytest.raises(ValueError, match="step_labels"):
        PairConfig(step_labels="mc")


def test_preference_pairs_empty_input():
    """No nodes gives an empty table with the PREFERENCE_PAIRS schema, with or without final pairs."""
    for config in (PairConfig(), STEP_ONLY):
        out = preference_pairs(TREE_NODES.empty_table(), prompts_table({}), config)
        assert out.num_rows == 0
        assert out.schema == PREFERENCE_PAIRS


# ---------------------------------------------------------------- final pairs


def _final_tree():
    """Three correct clean, one correct-with-error and three wrong trajectories (one a code_error).

    Ordering by leaf Q instead of mean Q would pick different trajectories on both sides."""
    return [root(),
            node(1, 0, 1, 0.5), answer(5, 1, 2, 1.0, True),                # good: mean 0.75, leaf 1.0
            node(2, 0, 1, 0.25), answer(6, 2, 2, 0.75, True),              # good: mean 0.5, leaf 0.75
            node(11, 0, 1, -0.5), answer(12, 11, 2, 1.0, True),            # good: mean 0.25, leaf 1.0; not selected
            node(9, 0, 1, 1.0, exec_status="error"), answer(10, 9, 2, 1.0, True),  # correct but has an error
            node(3, 0, 1, -1.0), answer(7, 3, 2, -0.25, False),            # bad: mean -0.625, leaf -0.25
            node(4, 0, 1, -0.5, terminal_kind="code_error", exec_status="error"),  # bad: mean -0.5
            answer(8, 0, 1, -0.375, False)]                                # bad: mean -0.375; not selected


def test_final_pairs_2x2():
    """Top 2 correct clean solutions by mean Q pair with the 2 worst wrong ones (code_error too); q = leaf Q."""
    out = pairs(_final_tree(), PairConfig(), kind="final")
    assert keys(out) == [(0, 5, 4), (0, 5, 7), (0, 6, 4), (0, 6, 7)]
    by_key = {(r["chosen_node_id"], r["rejected_node_id"]): r for r in out}
    r = by_key[(5, 7)]
    assert r["chosen"] == text(1) + text(5) and r["rejected"] == text(3) + text(7)
    assert (r["q_chosen"], r["q_rejected"]) == (1.0, -0.25)
    assert r["prompt"] == PROMPT
    r = by_key[(6, 4)]
    assert r["chosen"] == text(2) + text(6) and r["rejected"] == text(4)
    assert (r["q_chosen"], r["q_rejected"]) == (0.75, -0.5)
    assert {(r["pos_count"], r["neg_count"], r["weight"]) for r in out} == {(2, 2, 0.25)}


def test_final_pairs_1x4():
    """One correct solution pairs with the 4 lowest-mean-Q of 5 wrong ones."""
    rows = [root(), answer(1, 0, 1, 1.0, True)] + [
        answer(i, 0, 1, q, False) for i, q in [(2, 0.0), (3, -0.25), (4, -0.5), (5, -0.75), (6, -1.0)]]
    out = pairs(rows, PairConfig(), kind="final")
    assert keys(out) == [(0, 1, 3), (0, 1, 4), (0, 1, 5), (0, 1, 6)]
    assert {(r["pos_count"], r["neg_count"], r["weight"]) for r in out} == {(1, 4, 0.25)}


def test_final_pairs_margin_on_leaf_q():
    """The final-pair margin compares leaf Q values (0.25 dropped, 0.5 kept), not mean Q."""
    rows = [root(), node(1, 0, 1, 1.0), answer(2, 1, 2, 0.5, True),
            node(3, 0, 1, -1.0), answer(4, 3, 2, 0.25, False),   # leaf margin 0.25
            node(5, 0, 1, -0.5), answer(6, 5, 2, 0.0, False)]    # leaf margin 0.5
    out = pairs(rows, PairConfig(), kind="final")
    assert keys(out) == [(0, 2, 6)]
    assert (out[0]["pos_count"], out[0]["neg_count"], out[0]["weight"]) == (1, 2, 0.5)


def test_final_pairs_off_gives_only_step_pairs():
    """final_pairs=False returns exactly the step pairs."""
    out = pairs(_final_tree(), PairConfig(final_pairs=False))
    assert {r["kind"] for r in out} == {"step"}
    # root: top positives 9 (1.0), 1 (0.5) of 9, 1, 2, 11; negatives 3 (-1.0), 8 (-0.375); 4 (code_error) is neither
    assert keys(out) == [(0, 1, 3), (0, 1, 8), (0, 9, 3), (0, 9, 8)]


def test_step_pairs_off_gives_only_final_pairs_and_needs_no_labels():
    """step_pairs=False returns exactly the final pairs, even with step_labels: completions and trees
    without Monte-Carlo labels (rounds that do not label); both kinds off is a config error."""
    both = pairs(_final_tree(), PairConfig())
    out = pairs(_final_tree(), PairConfig(step_pairs=False, step_labels="completions"))
    assert {r["kind"] for r in out} == {"final"} and out == [r for r in both if r["kind"] == "final"]
    with pytest.raises(ValueError, match="both off"):
        PairConfig(step_pairs=False, final_pairs=False)
