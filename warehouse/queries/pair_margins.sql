-- Preference-pair margins Q(chosen) - Q(rejected), by kind, in bins of 0.25.
SELECT round, kind, floor((q_chosen - q_rejected) * 4) / 4 AS margin_from, count(*) AS pairs,
       round(avg(edit_distance), 1) AS mean_edit_distance, round(sum(weight), 2) AS total_weight
FROM preference_pairs
GROUP BY ALL
ORDER BY round, kind, margin_from;
