-- Q-values by depth: how value concentrates along the tree (visited, non-root nodes).
SELECT round, depth, count(*) AS nodes,
       round(avg(q_value), 3) AS mean_q,
       round(quantile_cont(q_value, 0.5), 3) AS median_q,
       count(*) FILTER (WHERE q_value > 0) AS positive,
       count(*) FILTER (WHERE q_value < 0) AS negative,
       count(*) FILTER (WHERE terminal_kind = 'answer') AS answers
FROM tree_nodes
WHERE depth > 0 AND visits > 0
GROUP BY ALL
ORDER BY round, depth;
