"""Key statistics of a round's tables, computed in SQL over the views: what the Dagster metadata
and the `rstar` CLI show. Each function returns plain values plus ready-made markdown tables."""

from __future__ import annotations

from typing import Sequence

from rstar_pipeline.warehouse.store import Warehouse
from rstar_pipeline.warehouse.views import connect


def _where(round: int, shards: Sequence[str] | None, alias: str = "") -> tuple[str, dict]:
    col = f"{alias}." if alias else ""
    params: dict = {"round": round}
    clause = f"{col}round = $round"
    if shards is not None:
        clause += f" AND list_contains($shards, {col}shard)"
        params["shards"] = list(shards)
    return clause, params


def _rows(store: Warehouse, sql: str, params: dict) -> list[dict]:
    con = connect(store)
    try:
        cur = con.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    finally:
        con.close()


def markdown(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    head = list(rows[0])
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(fmt(r[h]) for h in head) + " |" for r in rows]
    return "\n".join(lines)


def search_summary(store: Warehouse, round: int, shards: Sequence[str] | None = None) -> dict:
    where, params = _where(round, shards)
    totals = _rows(store, f"""
        SELECT count(DISTINCT problem_id) AS problems,
               count(DISTINCT problem_id) FILTER (WHERE is_correct) AS solved,
               count(*) AS nodes,
               coalesce(avg(depth) FILTER (WHERE depth > 0), 0) AS mean_depth,
               coalesce(avg(depth) FILTER (WHERE terminal_kind = 'answer'), 0) AS mean_answer_depth,
               count(*) FILTER (WHERE exec_status IS NOT NULL) AS programs,
               count(*) FILTER (WHERE exec_status NOT IN ('ok')) AS failed_programs
        FROM tree_nodes WHERE {where}""", params)[0]
    totals["solve_rate"] = totals["solved"] / totals["problems"] if totals["problems"] else 0.0
    terminals = _rows(store, f"""
        SELECT terminal_kind, count(*) AS nodes, count(*) FILTER (WHERE is_correct) AS correct
        FROM tree_nodes WHERE {where} AND terminal_kind <> 'none' GROUP BY 1 ORDER BY 1""", params)
    q_hist = _rows(store, f"""
        SELECT floor(q_value * 4) / 4 AS q_from, count(*) AS nodes
        FROM tree_nodes WHERE {where} AND depth > 0 AND visits > 0 GROUP BY 1 ORDER BY 1""", params)
    by_level = _rows(store, f"""
        WITH p AS (SELECT t.problem_id, any_value(pr.level) AS level, bool_or(coalesce(t.is_correct, false)) AS solved
                   FROM tree_nodes t JOIN problems pr USING (problem_id) WHERE {_where(round, shards, "t")[0]}
                   GROUP BY 1)
        SELECT level, count(*) AS problems, count(*) FILTER (WHERE solved) AS solved,
               round(count(*) FILTER (WHERE solved) / count(*), 3) AS solve_rate
        FROM p GROUP BY 1 ORDER BY 1""", params)
    return {**totals, "terminals": terminals, "q_histogram": q_hist, "by_level": by_level}


def trajectory_summary(store: Warehouse, round: int, shards: Sequence[str] | None = None) -> dict:
    where, params = _where(round, shards)
    return _rows(store, f"""
        SELECT count(*) AS trajectories, count(*) FILTER (WHERE is_correct) AS correct,
               count(*) FILTER (WHERE selected_for_sft) AS sft_selected,
               count(DISTINCT problem_id) FILTER (WHERE selected_for_sft) AS sft_problems,
               coalesce(avg(n_steps) FILTER (WHERE selected_for_sft), 0) AS sft_mean_steps,
               count(*) FILTER (WHERE selected_for_sft AND (NOT is_correct OR has_exec_error)) AS sft_violations
        FROM trajectories WHERE {where}""", params)[0]


def pair_summary(store: Warehouse, round: int, shards: Sequence[str] | None = None) -> dict:
    where, params = _where(round, shards)
    totals = _rows(store, f"""
        SELECT count(*) AS pairs, count(*) FILTER (WHERE kind = 'step') AS step_pairs,
               count(*) FILTER (WHERE kind = 'final') AS final_pairs, count(DISTINCT problem_id) AS problems,
               coalesce(avg(q_chosen - q_rejected), 0) AS mean_margin,
               coalesce(min(q_chosen - q_rejected), 0) AS min_margin,
               coalesce(avg(edit_distance), 0) AS mean_edit_distance
        FROM preference_pairs WHERE {where}""", params)[0]
    by_depth = _rows(store, f"""
        SELECT pp.kind, n.depth AS prefix_depth, count(*) AS pairs, round(avg(pp.q_chosen - pp.q_rejected), 3) AS mean_margin
        FROM preference_pairs pp JOIN tree_nodes n
          ON n.round = pp.round AND n.problem_id = pp.problem_id AND n.node_id = pp.prefix_node_id
        WHERE {_where(round, shards, "pp")[0]}
        GROUP BY 1, 2 ORDER BY 1, 2""", params)
    return {**totals, "by_depth": by_depth}
