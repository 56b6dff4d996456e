-- Consistency checks over every round: each row is one invariant and its number of violations (all 0).
WITH cfg AS (
    SELECT round, shard,
           CAST(json_extract(config, '$.search.rollouts') AS INTEGER) AS rollouts,
           CAST(json_extract(config, '$.search.n_samples') AS INTEGER) AS n_samples,
           CAST(json_extract(config, '$.search.max_depth') AS INTEGER) AS max_depth,
           CAST(json_extract(config, '$.search.backprop_failures') AS BOOLEAN) AS backprop_failures
    FROM search_shards
),
per_problem AS (
    SELECT t.round, t.shard, t.problem_id, count(*) AS nodes, max(t.n_children) AS max_children,
           max(t.depth) AS max_depth,
           count(*) FILTER (WHERE t.terminal_kind <> 'none') AS terminals,
           sum(CASE WHEN t.terminal_kind = 'answer' AND t.is_correct THEN 1
                    WHEN t.terminal_kind <> 'none' THEN -1 ELSE 0 END) AS terminal_reward,
           any_value(t.visits) FILTER (WHERE t.parent_id IS NULL) AS root_visits,
           any_value(t.value_sum) FILTER (WHERE t.parent_id IS NULL) AS root_value
    FROM tree_nodes t GROUP BY ALL
)
SELECT 'sft trajectory not correct or with an execution error' AS "check",
       count(*) FILTER (WHERE selected_for_sft AND (NOT is_correct OR has_exec_error)) AS violations
FROM trajectories
UNION ALL
SELECT 'more than sft_top_k=2 sft trajectories for a problem',
       count(*) FROM (SELECT round, problem_id FROM trajectories WHERE selected_for_sft GROUP BY ALL HAVING count(*) > 2)
UNION ALL
SELECT 'pair with q_chosen - q_rejected < 0.5', count(*) FILTER (WHERE q_chosen - q_rejected < 0.5 - 1e-9) FROM preference_pairs
UNION ALL
SELECT 'pair with edit distance < 20', count(*) FILTER (WHERE edit_distance < 20) FROM preference_pairs
UNION ALL
SELECT 'duplicate tree node', count(*) - count(DISTINCT (round, problem_id, node_id)) FROM tree_nodes
UNION ALL
SELECT 'duplicate trajectory', count(*) - count(DISTINCT (round, problem_id, leaf_node_id)) FROM trajectories
UNION ALL
SELECT 'duplicate pair', count(*) - count(DISTINCT (round, problem_id, kind, prefix_node_id, chosen_node_id, rejected_node_id))
FROM preference_pairs
UNION ALL
SELECT 'node whose parent is missing', count(*)
FROM tree_nodes c LEFT JOIN tree_nodes p
  ON p.round = c.round AND p.problem_id = c.problem_id AND p.node_id = c.parent_id
WHERE c.parent_id IS NOT NULL AND p.node_id IS NULL
UNION ALL
SELECT 'searched shard whose trees do not cover its problems (all, or max_problems_per_shard)', count(*)
FROM (
    SELECT coalesce(CAST(json_extract(s.config, '$.search.max_problems_per_shard') AS INTEGER), 0) AS cap,
           (SELECT count(*) FROM problems p WHERE p.shard = s.shard) AS n,
           (SELECT count(DISTINCT t.problem_id) FROM tree_nodes t WHERE t.round = s.round AND t.shard = s.shard) AS searched
    FROM search_shards s
)
WHERE searched <> CASE WHEN cap > 0 THEN least(n, cap) ELSE n END
UNION ALL
SELECT 'node with more children than n_samples', count(*) FILTER (WHERE p.max_children > c.n_samples)
FROM per_problem p JOIN cfg c USING (round, shard)
UNION ALL
SELECT 'tree deeper than max_depth + 1', count(*) FILTER (WHERE p.max_depth > c.max_depth + 1)
FROM per_problem p JOIN cfg c USING (round, shard)
UNION ALL
SELECT 'tree larger than 1 + rollouts * (max_depth + 1) * n_samples nodes',
       count(*) FILTER (WHERE p.nodes > 1 + c.rollouts * (c.max_depth + 1) * c.n_samples)
FROM per_problem p JOIN cfg c USING (round, shard)
UNION ALL
SELECT 'root visits differ from the number of terminals backed up (backprop_failures on)',
       count(*) FILTER (WHERE c.backprop_failures AND (p.root_visits <> p.terminals
                                                       OR abs(p.root_value - p.terminal_reward) > 1e-9))
FROM per_problem p JOIN cfg c USING (round, shard);
