-- The full text of one trajectory, rebuilt from tree_nodes by walking from its leaf up to the root.
-- Parameters (all optional): round, problem_id, leaf_node_id; default: the first SFT trajectory.
--   rstar query trajectory_text -p problem_id=... -p leaf_node_id=...
WITH RECURSIVE target AS (
    SELECT round, problem_id, leaf_node_id FROM trajectories
    WHERE round = coalesce($round, round)
      AND problem_id = coalesce($problem_id, problem_id)
      AND leaf_node_id = coalesce($leaf_node_id, leaf_node_id)
    ORDER BY NOT selected_for_sft, round, problem_id, rank
    LIMIT 1
),
up AS (
    SELECT n.round, n.problem_id, n.node_id, n.parent_id, n.depth, n.step_text
    FROM tree_nodes n JOIN target t
      ON n.round = t.round AND n.problem_id = t.problem_id AND n.node_id = t.leaf_node_id
    UNION ALL
    SELECT n.round, n.problem_id, n.node_id, n.parent_id, n.depth, n.step_text
    FROM tree_nodes n JOIN up ON n.round = up.round AND n.problem_id = up.problem_id AND n.node_id = up.parent_id
)
SELECT any_value(up.round) AS round, any_value(up.problem_id) AS problem_id, any_value(p.question) AS question,
       any_value(p.answers) AS answers, string_agg(up.step_text, '' ORDER BY up.depth) AS solution
FROM up JOIN problems p USING (problem_id)
HAVING count(*) > 0;
