"""Training data from search trees, derived in SQL over `tree_nodes` rows (reference §3-§4).

Trajectories: every root-to-terminal path with its mean and min Q. SFT picks, per problem, the
top `sft_top_k` correct paths without execution errors by (mean Q, min Q).

Step pairs: under each expanded node (the shared prefix), children that lead to a correct answer
are positives and children that lead to a wrong answer are negatives; the `per_side` highest-Q
positives pair with the `per_side` lowest-Q negatives (1 x `single_side_max` or
`single_side_max` x 1 when one side has a single candidate), kept when the Q margin and the edit
distance pass their thresholds, weighted 1 / (pos * neg). With `step_labels: completions`, the
same, under labelled prefixes only, with a child's share of correct Monte-Carlo completions
(`search.label`) in place of its Q and of the answers below it. Final pairs: the best correct
whole solutions against the worst wrong ones (wrong answer or failed code), per problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from rstar_pipeline.warehouse.schemas import PREFERENCE_PAIRS, TRAJECTORIES
from rstar_pipeline.warehouse.store import conform


@dataclass(frozen=True)
class TrajectoryConfig:
    sft_top_k: int = field(default=2, metadata={"help": "SFT trajectories kept per problem"})
    template: str = field(default="sft", metadata={"help": "prompt template of the policy being trained"})

    def __post_init__(self):
        if self.sft_top_k < 1:
            raise ValueError("trajectories: sft_top_k must be >= 1")


@dataclass(frozen=True)
class PairConfig:
    per_side: int = field(default=2, metadata={"help": "positives and negatives per prefix (2 x 2 pairs)"})
    single_side_max: int = field(default=4, metadata={"help": "other side's size when one side has one candidate"})
    min_margin: float = field(default=0.5, metadata={"help": "smallest Q(chosen) - Q(rejected) kept"})
    min_edit_distance: int = field(default=20, metadata={"help": "smallest edit distance between chosen and rejected"})
    step_labels: str = field(default="q", metadata={
        "help": "what ranks sibling steps: 'q' (the tree's Q; paper) or 'completions' (the share of the search's "
                "Monte-Carlo completions that are correct: search.label_completions); recorded as q_chosen/q_rejected"})
    step_pairs: bool = field(default=True, metadata={
        "help": "pair sibling steps (off: only whole solutions, for rounds whose step labels would be noise)"})
    final_pairs: bool = field(default=True, metadata={"help": "also pair whole correct vs wrong solutions"})
    template: str = field(default="sft", metadata={"help": "prompt template of the PPM being trained"})

    def __post_init__(self):
        if min(self.per_side, self.single_side_max) < 1 or self.min_edit_distance < 0:
            raise ValueError("pairs: per_side and single_side_max must be >= 1, min_edit_distance >= 0")
        if not (self.step_pairs or self.final_pairs):
            raise ValueError("pairs: step_pairs and final_pairs are both off: no pairs would be made")
        if self.step_labels not in ("q", "completions"):
            raise ValueError(f"pairs: step_labels must be 'q' or 'completions', not {self.step_labels!r}")


def trajectories(nodes: pa.Table, prompts: pa.Table, config: TrajectoryConfig) -> pa.Table:
    """`trajectories` rows for `tree_nodes` rows; `prompts` has (problem_id, prompt)."""
    with _session(nodes, prompts, {"top_k": config.sft_top_k}) as con:
        return conform(con.sql("SELECT * FROM trajectories").to_arrow_table(), TRAJECTORIES)


def preference_pairs(nodes: pa.Table, prompts: pa.Table, config: PairConfig) -> pa.Table:
    """`preference_pairs` rows (step and, if configured, final) for `tree_nodes` rows."""
    mc = config.step_pairs and config.step_labels == "completions"
    if mc and nodes.num_rows and pc.max(nodes["mc_samples"]).as_py() is None:
        raise ValueError("pairs: step_labels is 'completions' but these trees have no Monte-Carlo labels "
                         "(set search.label_completions, or pairs.step_labels: q)")
    params = {"top_k": 1, "per_side": config.per_side, "single": config.single_side_max,
              "margin": config.min_margin, "edit": config.min_edit_distance, "mc": mc}
    with _session(nodes, prompts, params) as con:
        parts = ([_STEP_PAIRS] if config.step_pairs else []) + ([_FINAL_PAIRS] if config.final_pairs else [])
        sql = "\nUNION ALL\n".join(parts)
        pairs = con.sql(f"SELECT * FROM ({sql}) ORDER BY problem_id, kind DESC, prefix_node_id, "
                        "chosen_node_id, rejected_node_id").to_arrow_table()
        return conform(pairs, PREFERENCE_PAIRS)


class _session:
    """A DuckDB connection holding the inputs, every root-to-node path and the trajectories."""

    def __init__(self, nodes: pa.Table, prompts: pa.Table, params: dict):
        self.con = duckdb.connect(":memory:")
        self.con.register("nodes", nodes)
        self.con.register("prompts", prompts)
        for name, value in params.items():
            self.con.execute(f"SET VARIABLE {name} = {value!r}")
        self.con.execute(_PATHS)
        self.con.execute(_TRAJECTORIES)

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        return self.con

    def __exit__(self, *exc) -> None:
        self.con.close()


# Every node's path from the root (root excluded from the lists).
_PATHS = """
CREATE TEMP TABLE paths AS
WITH RECURSIVE p AS (
    SELECT round, shard, problem_id, node_id, []::INTEGER[] AS node_ids, []::VARCHAR[] AS steps,
           []::DOUBLE[] AS qs, false AS has_error
    FROM nodes WHERE parent_id IS NULL
    UNION ALL
    SELECT n.round, n.shard, n.problem_id, n.node_id, list_append(p.node_ids, n.node_id),
           list_append(p.steps, n.step_text), list_append(p.qs, n.q_value),
           p.has_error OR coalesce(n.exec_status <> 'ok', false)
    FROM nodes n JOIN p ON n.problem_id = p.problem_id AND n.parent_id = p.node_id
)
SELECT * FROM p
"""

_TRAJECTORIES = """
CREATE TEMP TABLE trajectories AS
WITH t AS (
    SELECT p.round, p.shard, p.problem_id, n.node_id AS leaf_node_id, p.node_ids, p.steps, pr.prompt,
           array_to_string(p.steps, '') AS response, n.final_answer, n.terminal_kind,
           coalesce(n.terminal_kind = 'answer' AND n.is_correct, false) AS is_correct,
           p.has_error AS has_exec_error, len(p.steps)::INTEGER AS n_steps,
           list_avg(p.qs) AS mean_q, list_min(p.qs) AS min_q, n.q_value AS leaf_q
    FROM paths p
    JOIN nodes n USING (problem_id, node_id)
    JOIN prompts pr USING (problem_id)
    WHERE n.terminal_kind <> 'none'
)
SELECT *,
       row_number() OVER (PARTITION BY problem_id
                          ORDER BY (is_correct AND NOT has_exec_error) DESC, mean_q DESC, min_q DESC,
                                   leaf_node_id)::INTEGER AS rank,
       false AS selected_for_sft
FROM t;
UPDATE trajectories SET selected_for_sft = is_correct AND NOT has_exec_error AND rank <= getvariable('top_k');
"""

# Answers below every node: how many correct and wrong answer leaves each node leads to.
_OUTCOMES = """
outcomes AS (
    SELECT problem_id, node_id, count_if(is_correct) AS n_correct, count_if(NOT is_correct) AS n_wrong
    FROM (SELECT problem_id, unnest(node_ids) AS node_id, is_correct
          FROM trajectories WHERE terminal_kind = 'answer')
    GROUP BY ALL
)"""

_STEP_PAIRS = f"""
WITH {_OUTCOMES},
tree_kids AS (  -- step_labels 'q': a child's Q, and the answers below it
    SELECT n.problem_id, n.parent_id, n.node_id, n.q_value AS label, n.step_text, n.round, n.shard,
           coalesce(o.n_correct, 0) AS n_correct, coalesce(o.n_wrong, 0) AS n_wrong
    FROM nodes n LEFT JOIN outcomes o USING (problem_id, node_id)
    WHERE n.parent_id IS NOT NULL AND NOT getvariable('mc')
),
mc_kids AS (  -- step_labels 'completions': the share of a child's completions that are correct, under
              -- labelled prefixes only; a failed or answered child counts as its own completion
    SELECT n.problem_id, n.parent_id, n.node_id, n.step_text, n.round, n.shard,
           coalesce(n.mc_correct, (n.terminal_kind = 'answer' AND n.is_correct)::INTEGER) AS n_correct,
           coalesce(n.mc_samples - n.mc_correct, 1 - (n.terminal_kind = 'answer' AND n.is_correct)::INTEGER) AS n_wrong
    FROM nodes n
    WHERE getvariable('mc') AND (n.mc_samples > 0 OR n.terminal_kind IN ('answer', 'code_error'))
      AND (n.problem_id, n.parent_id) IN (SELECT (problem_id, parent_id) FROM nodes WHERE mc_samples > 0)
),
kids AS (
    SELECT * FROM tree_kids
    UNION ALL BY NAME
    SELECT *, n_correct / (n_correct + n_wrong) AS label FROM mc_kids
),
pos AS (
    SELECT *, row_number() OVER w AS r, count(*) OVER (PARTITION BY problem_id, parent_id) AS n
    FROM kids WHERE n_correct > 0
    WINDOW w AS (PARTITION BY problem_id, parent_id ORDER BY label DESC, node_id)
),
neg AS (
    SELECT *, row_number() OVER w AS r, count(*) OVER (PARTITION BY problem_id, parent_id) AS n
    FROM kids WHERE n_wrong > 0
    WINDOW w AS (PARTITION BY problem_id, parent_id ORDER BY label ASC, node_id)
),
groups AS (
    SELECT problem_id, parent_id, max(pos.n) AS n_pos, max(neg.n) AS n_neg
    FROM pos JOIN neg USING (problem_id, parent_id) GROUP BY ALL
),
sel_pos AS (
    SELECT pos.* FROM pos JOIN groups g USING (problem_id, parent_id)
    WHERE pos.r <= CASE WHEN g.n_neg = 1 THEN getvariable('single') ELSE getvariable('per_side') END
),
sel_neg AS (
    SELECT neg.* FROM neg JOIN groups g USING (problem_id, parent_id)
    WHERE neg.r <= CASE WHEN g.n_pos = 1 THEN getvariable('single') ELSE getvariable('per_side') END
),
pos_n AS (SELECT problem_id, parent_id, count(*) AS pos_count FROM sel_pos GROUP BY ALL),
neg_n AS (SELECT problem_id, parent_id, count(*) AS neg_count FROM sel_neg GROUP BY ALL),
sized AS (
    SELECT c.problem_id, c.parent_id, c.node_id AS chosen_node_id, r.node_id AS rejected_node_id,
           c.step_text AS chosen, r.step_text AS rejected, c.label AS q_chosen, r.label AS q_rejected,
           c.round, c.shard, pn.pos_count, nn.neg_count
    FROM sel_pos c
    JOIN sel_neg r USING (problem_id, parent_id)
    JOIN pos_n pn USING (problem_id, parent_id)
    JOIN neg_n nn USING (problem_id, parent_id)
    WHERE c.node_id <> r.node_id
)
SELECT s.round, s.shard, s.problem_id, 'step' AS kind, s.parent_id AS prefix_node_id, s.chosen_node_id,
       s.rejected_node_id, pr.prompt || array_to_string(coalesce(p.steps, []), '') AS prompt, s.chosen, s.rejected,
       s.q_chosen, s.q_rejected, levenshtein(s.chosen, s.rejected) AS edit_distance, s.pos_count, s.neg_count,
       1.0 / (s.pos_count * s.neg_count) AS weight
FROM sized s
JOIN paths p ON p.problem_id = s.problem_id AND p.node_id = s.parent_id
JOIN prompts pr ON pr.problem_id = s.problem_id
WHERE s.q_chosen - s.q_rejected >= getvariable('margin') - 1e-9  -- Q values are sums of floats
  AND levenshtein(s.chosen, s.rejected) >= getvariable('edit')
"""

_FINAL_PAIRS = """
SELECT * FROM (
    WITH good AS (
        SELECT *, row_number() OVER (PARTITION BY problem_id ORDER BY mean_q DESC, min_q DESC, leaf_node_id) AS r,
               count(*) OVER (PARTITION BY problem_id) AS n
        FROM trajectories WHERE is_correct AND NOT has_exec_error
    ),
    bad AS (
        SELECT *, row_number() OVER (PARTITION BY problem_id ORDER BY mean_q ASC, min_q ASC, leaf_node_id) AS r,
               count(*) OVER (PARTITION BY problem_id) AS n
        FROM trajectories WHERE NOT is_correct AND terminal_kind IN ('answer', 'code_error')
    ),
    sel_good AS (
        SELECT g.* FROM good g JOIN (SELECT DISTINCT problem_id, n AS n_bad FROM bad) b USING (problem_id)
        WHERE g.r <= CASE WHEN b.n_bad = 1 THEN getvariable('single') ELSE getvariable('per_side') END
    ),
    sel_bad AS (
        SELECT b.* FROM bad b JOIN (SELECT DISTINCT problem_id, n AS n_good FROM good) g USING (problem_id)
        WHERE b.r <= CASE WHEN g.n_good = 1 THEN getvariable('single') ELSE getvariable('per_side') END
    ),
    sized AS (
        SELECT g.*, b.leaf_node_id AS rejected_node_id, b.response AS rejected, b.leaf_q AS q_rejected,
               (SELECT count(*) FROM sel_good x WHERE x.problem_id = g.problem_id) AS pos_count,
               (SELECT count(*) FROM sel_bad x WHERE x.problem_id = g.problem_id) AS neg_count
        FROM sel_good g JOIN sel_bad b USING (problem_id)
    )
    SELECT round, shard, problem_id, 'final' AS kind, 0 AS prefix_node_id, leaf_node_id AS chosen_node_id,
           rejected_node_id, prompt, response AS chosen, rejected, leaf_q AS q_chosen, q_rejected,
           levenshtein(response, rejected) AS edit_distance, pos_count, neg_count,
           1.0 / (pos_count * neg_count) AS weight
    FROM sized
    WHERE leaf_q - q_rejected >= getvariable('margin') - 1e-9 AND levenshtein(response, rejected) >= getvariable('edit')
)
"""
