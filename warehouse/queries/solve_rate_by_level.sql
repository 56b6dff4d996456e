-- Solve rate by difficulty level and round: a problem is solved when its tree holds a correct answer.
WITH per_problem AS (
    SELECT t.round, p.level, t.problem_id, bool_or(coalesce(t.is_correct, false)) AS solved
    FROM tree_nodes t JOIN problems p USING (problem_id)
    GROUP BY ALL
)
SELECT round, level, count(*) AS problems, count(*) FILTER (WHERE solved) AS solved,
       round(100.0 * count(*) FILTER (WHERE solved) / count(*), 1) AS solved_pct
FROM per_problem
GROUP BY ALL
ORDER BY round, level;
