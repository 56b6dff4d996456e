-- One line per round: problems, solve rate, nodes, SFT rows and pairs.
SELECT t.round, count(DISTINCT t.problem_id) AS problems,
       round(100.0 * count(DISTINCT t.problem_id) FILTER (WHERE t.is_correct) / count(DISTINCT t.problem_id), 1) AS solved_pct,
       count(*) AS nodes,
       (SELECT count(*) FROM trajectories x WHERE x.round = t.round AND x.selected_for_sft) AS sft_rows,
       (SELECT count(*) FROM preference_pairs x WHERE x.round = t.round AND x.kind = 'step') AS step_pairs,
       (SELECT count(*) FROM preference_pairs x WHERE x.round = t.round AND x.kind = 'final') AS final_pairs
FROM tree_nodes t
GROUP BY t.round
ORDER BY t.round;
