"""The demo's figures: did self-evolution work on the mini world?

One row per round: the search's solve rate, the SFT rows the round's policy trained on, that policy's
greedy pass@1 on held-out problems (overall and by level), best-of-N ranked by the round's PPM, MCTS
with the PPM (no ground truth) and greedy on the same problems (MCTS runs on the first N), the PPM's
held-out pair accuracy (pairs of problems held out of the PPM's training, though not of the policy's)
and its accuracy on the policy's own best-of-N samples of the held-out problems (every correct vs wrong
sample of one problem); and a `teacher` row with the
bootstrap teacher's own greedy pass@1 on the same held-out problems, the baseline a student that learns
from verified search data should overtake. The policy figures come from the `evaluations` table
(`round_r/eval`), the others from the round's tables and checkpoints; the teacher is evaluated here,
on the benchmark the rounds were evaluated on, with the teacher configuration that wrote round 1's data.

Written to `<store>/demo/summary.json` (a list of rows; values are fractions), `summary.md` and
`summary.png`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from contextlib import closing
from pathlib import Path

from rstar_pipeline import checkpoints
from rstar_pipeline.evaluation import EvalConfig, evaluations_table, load_benchmark
from rstar_pipeline.miniworld.teacher import BootstrapTeacher, TeacherConfig
from rstar_pipeline.problemsets import Problem
from rstar_pipeline.sandbox import SandboxConfig, make_sandbox
from rstar_pipeline.schedule import ROUNDS
from rstar_pipeline.search.greedy import solve_greedy
from rstar_pipeline.warehouse.store import Warehouse
from rstar_pipeline.warehouse.summaries import search_summary
from rstar_pipeline.warehouse.views import query

BENCHMARK = "miniworld"
METHOD_COLUMNS = {"greedy": "policy_greedy", "best_of_n": "best_of_n", "mcts": "mcts_ppm"}


def eval_config(store: Warehouse) -> EvalConfig:
    """The configuration the latest evaluated round used on the mini-world benchmark (from its metadata)."""
    for r in sorted(ROUNDS, reverse=True):
        meta = store.meta("evaluations", f"{BENCHMARK}.greedy", r)
        if meta:
            fields = {k: v for k, v in meta["config"].items() if k not in ("generator", "scorer", "sandbox")}
            return EvalConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    raise FileNotFoundError("no round has been evaluated on the mini world yet: materialize round_r/eval first")


def round_1_teacher(store: Warehouse) -> TeacherConfig:
    """The teacher configuration that searched round 1 (recorded with its trees)."""
    rows = query(store, "SELECT any_value(config) AS config FROM search_shards WHERE round = 1").to_pylist()
    if not rows or rows[0]["config"] is None:
        raise FileNotFoundError("round 1 has not been searched yet: materialize round_1/mcts_trees first")
    recorded = json.loads(rows[0]["config"])["teacher"]
    return TeacherConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()})


def evaluate_teacher(store: Warehouse, config: EvalConfig, teacher: TeacherConfig) -> list[dict]:
    """The teacher's greedy pass@1 on the mini-world benchmark; rows in `evaluations` (round 0, model
    'teacher')."""
    _, problems, _ = load_benchmark(BENCHMARK, config)
    with closing(make_sandbox(SandboxConfig(preload=("math", "fractions")))) as sandbox:
        results = solve_greedy(problems, BootstrapTeacher(teacher), sandbox, max_tokens=config.max_tokens)
    rows = [{"problem_id": r.problem_id, "prediction": r.prediction, "correct": r.is_correct, "score": None}
            for r in results]
    table = evaluations_table(0, f"{BENCHMARK}.greedy.teacher", "teacher", BENCHMARK, "greedy", rows)
    store.write("evaluations", table, f"{BENCHMARK}.greedy.teacher", 0, {"teacher": teacher.__dict__})
    return table.to_pylist()


def summary(store: Warehouse, teacher_rows: list[dict], problems: list[Problem]) -> list[dict]:
    """The demo table's rows: one per finished round, then the teacher."""
    levels = {p.problem_id: p.level for p in problems}
    evals = query(store, "SELECT round, method, problem_id, correct FROM evaluations WHERE benchmark = $b "
                         "AND round > 0", {"b": BENCHMARK}).to_pylist()
    out = []
    for r in ROUNDS:
        policy, ppm = checkpoints.read(store, r, "policy"), checkpoints.read(store, r, "ppm")
        if policy is None:
            continue
        row = {"round": r, "search_solve_rate": round(search_summary(store, r)["solve_rate"], 4),
               "sft_rows": policy.train_rows + policy.eval_rows,
               "ppm_pair_accuracy": round(ppm.metrics["eval_accuracy"], 4) if ppm and "eval_accuracy" in ppm.metrics
               else None}
        figures = (store.meta("evaluations", f"{BENCHMARK}.best_of_n", r) or {}).get("figures", {})
        row["ppm_sample_pair_accuracy"] = _rounded(figures.get("ppm_sample_pair_accuracy"))
        round_evals = [e for e in evals if e["round"] == r]
        for method, column in METHOD_COLUMNS.items():
            row[column] = _rate(e["correct"] for e in round_evals if e["method"] == method)
        row["greedy_on_mcts_problems"] = _greedy_on_mcts_problems(round_evals)
        row["policy_greedy_by_level"] = _by_level([e for e in round_evals if e["method"] == "greedy"], levels)
        out.append(row)
    out.append({"round": "teacher", "policy_greedy": _rate(t["correct"] for t in teacher_rows),
                "policy_greedy_by_level": _by_level(teacher_rows, levels)})
    return out


def _greedy_on_mcts_problems(evals: list[dict]) -> float | None:
    """Greedy pass@1 on the problems MCTS ran on (`mcts_limit`: the first N): the like-for-like baseline for
    the search, whose first N problems can be easier or harder than the whole benchmark."""
    searched = {e["problem_id"] for e in evals if e["method"] == "mcts"}
    return _rate(e["correct"] for e in evals if e["method"] == "greedy" and e["problem_id"] in searched)


def _rate(hits) -> float | None:
    """Share of true values, rounded as the summary is; None for no rows."""
    hits = list(hits)
    return round(sum(hits) / len(hits), 4) if hits else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _by_level(rows: list[dict], levels: dict[str, int]) -> dict[str, float]:
    hits = defaultdict(list)
    for e in rows:
        hits[levels.get(e["problem_id"])].append(e["correct"])
    return {str(lv): round(sum(v) / len(v), 4) for lv, v in sorted(hits.items()) if lv is not None}


def markdown(rows: list[dict]) -> str:
    levels = sorted({lv for r in rows for lv in r.get("policy_greedy_by_level", {})}, key=int)
    head = ["round", "search solved", "SFT rows", "policy greedy", *(f"L{lv}" for lv in levels), "best-of-N (PPM)",
            "MCTS + PPM", "greedy, MCTS problems", "PPM pair acc.", "PPM on samples"]
    pct = lambda v: "" if v is None else f"{100 * v:.1f}%"
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        by_level = r.get("policy_greedy_by_level", {})
        cells = [str(r["round"]), pct(r.get("search_solve_rate")), str(r.get("sft_rows") or ""),
                 pct(r.get("policy_greedy")), *(f"{100 * by_level[lv]:.0f}" if lv in by_level else "" for lv in levels),
                 pct(r.get("best_of_n")), pct(r.get("mcts_ppm")), pct(r.get("greedy_on_mcts_problems")),
                 *("" if r.get(k) is None else f"{r[k]:.3f}" for k in ("ppm_pair_accuracy", "ppm_sample_pair_accuracy"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(rows: list[dict], path: Path) -> Path:
    """Left: accuracy by round (policy greedy, best-of-N, MCTS + PPM, PPM pair accuracy, search solve rate)
    with the teacher's greedy pass@1 as a dashed line; right: policy greedy pass@1 by level, per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r for r in rows if r["round"] != "teacher"]
    teacher = next((r for r in rows if r["round"] == "teacher"), None)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    xs = [r["round"] for r in rounds]
    for key, label in (("policy_greedy", "policy greedy"), ("best_of_n", "best-of-N (PPM)"),
                       ("mcts_ppm", "MCTS + PPM"), ("search_solve_rate", "search solve rate"),
                       ("ppm_pair_accuracy", "PPM pair accuracy"),
                       ("ppm_sample_pair_accuracy", "PPM on the policy's samples")):
        points = [(x, r[key]) for x, r in zip(xs, rounds) if r.get(key) is not None]
        if points:
            left.plot(*zip(*[(x, 100 * v) for x, v in points]), marker="o", label=label)
    if teacher and teacher.get("policy_greedy") is not None:
        left.axhline(100 * teacher["policy_greedy"], color="grey", linestyle="--", label="teacher greedy")
    left.set(xlabel="round", ylabel="%", xticks=xs, ylim=(0, 100), title="self-evolution on the mini world")
    left.legend(fontsize=8)
    for r in rounds + ([teacher] if teacher else []):
        by_level = r.get("policy_greedy_by_level") or {}
        if by_level:
            style = {"color": "grey", "linestyle": "--"} if r is teacher else {}
            right.plot([int(k) for k in by_level], [100 * v for v in by_level.values()], marker="o",
                       label=f"round {r['round']}" if r is not teacher else "teacher", **style)
    right.set(xlabel="level (operations)", ylabel="greedy pass@1 (%)", ylim=(0, 100), title="by level")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write(store: Warehouse, rows: list[dict], extra: dict | None = None) -> dict[str, Path]:
    folder = store.root / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "summary.json", "markdown": folder / "summary.md", "chart": folder / "summary.png"}
    paths["json"].write_text(json.dumps(rows, indent=2))
    paths["markdown"].write_text(markdown(rows) + "\n" + "".join(f"\n{k}: {v}" for k, v in (extra or {}).items()))
    chart(rows, paths["chart"])
    return paths
