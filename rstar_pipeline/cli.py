"""The `rstar` command: run a round through Dagster and query the warehouse with SQL.

    rstar run round_1                      # = dagster job execute ... -c assets/configs/round_1.yaml
    rstar run round_2                      # needs round 1's policy; round_3 and round_4 likewise
    rstar run evolve                       # rounds 1-4 in one run, with every round's preset
    rstar demo [--seed 1]                  # rounds 1-4, their evaluation and one table (job demo)
    rstar run round_1 --shard shard_003    # one shard as its own run (scale-out)
    rstar sql "select count(*) from tree_nodes"
    rstar query                            # list the named queries in warehouse/queries
    rstar query checks
    rstar views                            # CREATE VIEW statements for the DuckDB CLI
    rstar summary --round 1
    rstar eval --model round_2/policy --ppm round_2/ppm --benchmark ../shared/data/eval/math500_test.json \
               --method greedy best_of_n majority mcts mcts_majority --limit 50
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rstar_pipeline.paths import CONFIGS_DIR, dagster_home, store_root
from rstar_pipeline.problemsets import ProblemFileError
from rstar_pipeline.schedule import ROUNDS

DAGSTER_YAML = """\
telemetry:
  enabled: false
nux:
  enabled: false
run_queue:
  max_concurrent_runs: 2
"""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, KeyError, ProblemFileError) as e:
        print(f"rstar: {e}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rstar", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a job (all shards in one run) with its preset run config")
    run.add_argument("job", nargs="?", default="round_1", help="round_1 .. round_4, evolve or evaluate (default: round_1)")
    run.add_argument("-c", "--config", action="append", help="run-config YAML, repeatable "
                     "(default: assets/configs/<job>.yaml; for evolve, every round's)")
    run.add_argument("--shard", help="run one shard only, e.g. shard_003")
    run.add_argument("--shards", help="run a range of shards, e.g. shard_000:shard_003")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="rounds 1-4 and their evaluation on the mini world, then one table "
                                       "(the Dagster job demo with every round's preset and evaluate.yaml)")
    demo.add_argument("--seed", type=int, default=0, help="added (x 1000) to every seed of the presets: problems, "
                      "model, teacher, search, training, held-out problems and evaluation")
    demo.add_argument("--store", help="where the data goes (default: $RSTAR_STORE or warehouse/store)")
    demo.add_argument("-c", "--config", action="append", default=[], help="extra run-config YAML, merged last")
    demo.set_defaults(func=cmd_demo)

    sql = sub.add_parser("sql", help="run SQL over the warehouse views")
    sql.add_argument("query", nargs="?", help="SQL text (or use -f)")
    sql.add_argument("-f", "--file", help="read the SQL from a file")
    _output_args(sql)
    sql.set_defaults(func=cmd_sql)

    q = sub.add_parser("query", help="run a named query from warehouse/queries (no name: list them)")
    q.add_argument("name", nargs="?")
    q.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="query parameter")
    _output_args(q)
    q.set_defaults(func=cmd_query)

    views = sub.add_parser("views", help="print CREATE VIEW statements for the DuckDB CLI")
    views.set_defaults(func=cmd_views)

    summary = sub.add_parser("summary", help="key figures of a round")
    summary.add_argument("--round", type=int, default=1)
    summary.set_defaults(func=cmd_summary)

    ev = sub.add_parser("eval", help="evaluate a policy checkpoint on benchmarks (rows in the evaluations table)")
    ev.add_argument("--model", required=True, help="policy folder, hub id or round_<r>/policy")
    ev.add_argument("--ppm", help="PPM folder or round_<r>/ppm (needed by best_of_n, mcts, mcts_majority)")
    ev.add_argument("--benchmark", nargs="+", default=["miniworld"],
                    help="'miniworld', problem files (.json, .jsonl, .parquet) or hf:NAME[:CONFIG][@SPLIT]")
    ev.add_argument("--method", nargs="+", default=["greedy"], help="greedy, best_of_n, majority, mcts, mcts_majority")
    ev.add_argument("--limit", type=int, default=0, help="first N problems of each benchmark (0: all)")
    ev.add_argument("--n", type=int, default=8, help="samples per problem for best_of_n and majority")
    ev.add_argument("--mcts-rollouts", type=int, default=8, help="rollouts per problem for mcts")
    ev.add_argument("--mcts-samples", type=int, default=4, help="children per expansion for mcts")
    ev.add_argument("--mcts-temperature", type=float, default=1.0, help="sampling temperature of mcts expansions")
    ev.add_argument("--mcts-runs", type=int, default=4, help="MCTS runs voted on by mcts_majority")
    ev.add_argument("--mcts-top-n", type=int, default=0, help="mcts_majority: vote among the N best-scored (0: all)")
    ev.add_argument("--mcts-pick", choices=("q", "vote"), default="q",
                    help="mcts: the highest-Q answer node (the paper) or a vote over the answer nodes")
    ev.add_argument("--answer-check", action="store_true",
                    help="best_of_n, mcts: set aside answers that contradict their program's output")
    ev.add_argument("--backend", default="transformers", choices=("transformers", "vllm", "openai"),
                    help="policy backend (the PPM runs on vllm with vllm, else on transformers)")
    ev.add_argument("--base-url", action="append", default=[], help="openai backend: server URL, repeatable")
    ev.add_argument("--temperature", type=float, default=0.7)
    ev.add_argument("--max-tokens", type=int, default=1024)
    ev.add_argument("--seed", type=int, default=0)
    ev.set_defaults(func=cmd_eval)
    return p


def _output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--width", type=int, default=60, help="table format: cut cells to this many characters (0: no cut)")


# ---------------------------------------------------------------- run


def cmd_run(args) -> int:
    from rstar_pipeline.assets.partitions import SHARDS

    configs = [Path(c) for c in args.config] if args.config else default_configs(args.job)
    tags = None
    if args.shard or args.shards:
        start, _, end = (args.shards or f"{args.shard}:{args.shard}").partition(":")
        unknown = [k for k in (start, end) if k not in SHARDS]
        if unknown:
            raise ValueError(f"unknown shard {unknown[0]!r}; shards are {SHARDS[0]} .. {SHARDS[-1]}")
        tags = {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
    code, wall = _execute(args.job, configs, tags)
    if code != 0:
        return code
    if args.job == "evaluate":
        _print_table6()
    else:
        rounds = [int(args.job.split("_")[1])] if args.job.startswith("round_") else list(ROUNDS)
        for r in rounds:
            _print_summary(r, wall if r == rounds[-1] else None)
    _print_stage_times(args.job)
    return 0


def _execute(job: str, configs: list[Path], tags: dict | None = None) -> tuple[int, float]:
    """`dagster job execute` of `job` with the run-config files; (exit code, wall seconds)."""
    missing = [c for c in configs if not c.exists()]
    if missing:
        raise FileNotFoundError(f"run config {missing[0]} does not exist")
    cmd = [sys.executable, "-m", "dagster", "job", "execute", "-m", "rstar_pipeline.definitions", "-j", job]
    for config in configs:
        cmd += ["-c", str(config)]
    if tags:
        cmd += ["--tags", json.dumps(tags)]
    env = {**os.environ, "DAGSTER_HOME": str(_ensure_dagster_home()), "RSTAR_STORE": str(store_root())}
    print("$ " + " ".join(cmd[1:3] + [c if " " not in c else f"'{c}'" for c in cmd[3:]]), flush=True)
    start = time.perf_counter()
    code = subprocess.call(cmd, env=env)
    if code != 0:
        print(f"rstar: the run failed (exit code {code}); re-running the same command resumes it", file=sys.stderr)
    return code, time.perf_counter() - start


def cmd_demo(args) -> int:
    import yaml

    if args.store:
        os.environ["RSTAR_STORE"] = str(Path(args.store).resolve())
    config = _dagster_home_file(f"demo_seed_{args.seed}.yaml")
    config.write_text(yaml.safe_dump(demo_config(args.seed, [Path(c) for c in args.config]), sort_keys=False))
    code, wall = _execute("demo", [config])
    if code != 0:
        return code
    folder = store_root() / "demo"
    print(f"\nSelf-evolution on the mini world (seed {args.seed}), {wall / 60:.1f} min:\n")
    print((folder / "summary.md").read_text())
    print(f"\nFigures: {folder / 'summary.json'}\nChart:   {folder / 'summary.png'}")
    _print_stage_times("demo")
    return 0


# Where the demo job's seeds live (op, path in its config); those the presets leave out are set to their
# default (0) first, so that `--seed` moves every one of them.
DEMO_SEEDS = [("problems", ("seed",)), ("models__base", ("student", "seed")),
              ("round_1__mcts_trees", ("teacher", "seed"))] + [
    (f"round_{r}__{op}", path) for r in ROUNDS for op, path in (
        ("mcts_trees", ("search", "seed")), ("policy", ("training", "seed")), ("policy", ("heldout", "seed")),
        ("ppm", ("seed",)), ("eval", ("seed",)))]


def demo_config(seed: int, extra: list[Path] = ()) -> dict:
    """The demo's run config: every round's preset and evaluate.yaml (then `extra`) merged, every seed
    moved by 1000 * `seed`."""
    import yaml

    merged: dict = {}
    for path in default_configs("demo") + list(extra):
        if not path.exists():
            raise FileNotFoundError(f"run config {path} does not exist")
        merged = _merge(merged, yaml.safe_load(path.read_text()) or {})
    for op, path in DEMO_SEEDS:
        node = merged.setdefault("ops", {}).setdefault(op, {}).setdefault("config", {})
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node.setdefault(path[-1], 0)
    return _offset_seeds(merged, 1000 * seed)


def _merge(base: dict, extra: dict) -> dict:
    """Run-config files merged as Dagster merges repeated -c files: nested mappings key by key."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _offset_seeds(config, offset: int):
    """Every `seed` value in the run config, moved by `offset`."""
    if isinstance(config, dict):
        return {k: v + offset if k == "seed" and isinstance(v, int) else _offset_seeds(v, offset)
                for k, v in config.items()}
    if isinstance(config, list):
        return [_offset_seeds(v, offset) for v in config]
    return config


def _print_stage_times(job: str) -> None:
    """Wall time of each step of the job's latest run, from the Dagster instance's event log."""
    from dagster import DagsterInstance, RunsFilter

    with DagsterInstance.from_config(str(dagster_home())) as instance:
        records = instance.get_run_records(RunsFilter(job_name=job), limit=1)
        stats = instance.get_run_step_stats(records[0].dagster_run.run_id) if records else []
    timed = sorted((s for s in stats if s.start_time and s.end_time), key=lambda s: s.start_time)
    if timed:
        print("\nWall time by stage:")
        for s in timed:
            print(f"  {s.step_key:28} {s.end_time - s.start_time:8.1f} s")


def default_configs(job: str) -> list[Path]:
    if job == "evolve":
        return [CONFIGS_DIR / f"round_{r}.yaml" for r in ROUNDS]
    if job == "demo":
        return [CONFIGS_DIR / f"round_{r}.yaml" for r in ROUNDS] + [CONFIGS_DIR / "evaluate.yaml"]
    return [CONFIGS_DIR / f"{job}.yaml"]


def _ensure_dagster_home() -> Path:
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(DAGSTER_YAML)
    return home


def _dagster_home_file(name: str) -> Path:
    return _ensure_dagster_home() / name


def _print_table6() -> None:
    from rstar_pipeline.evaluation import round_rows, table6
    from rstar_pipeline.warehouse.store import Warehouse

    print("\nAccuracy (%) by round and method (evaluations table):\n" + table6(round_rows(Warehouse(store_root()))))


def _print_summary(round_no: int, wall: float | None = None) -> None:
    from rstar_pipeline import checkpoints
    from rstar_pipeline.warehouse.store import Warehouse
    from rstar_pipeline.warehouse.summaries import markdown, pair_summary, search_summary, trajectory_summary

    store = Warehouse(store_root())
    s, t, p = search_summary(store, round_no), trajectory_summary(store, round_no), pair_summary(store, round_no)
    search_s = _search_wall(store, round_no)
    print(f"\nRound {round_no}" + (f" finished in {wall:.1f} s" if wall else ""))
    print(f"  problems      {s['problems']}  solved {s['solved']} ({100 * s['solve_rate']:.1f}%)")
    print(f"  tree nodes    {s['nodes']}  mean depth {s['mean_depth']:.2f}  programs run {s['programs']}")
    if search_s:
        # the shards' own seconds, added up: more than the wall time when shards ran at once (`processes`)
        print(f"  search        {search_s:.1f} s over shards  ({s['nodes'] / search_s:.0f} nodes/s per process)")
    print(f"  trajectories  {t['trajectories']}  correct {t['correct']}  SFT rows {t['sft_selected']}")
    print(f"  pairs         {p['pairs']}  step {p['step_pairs']}  final {p['final_pairs']}  "
          f"mean margin {p['mean_margin']:.2f}")
    for kind in ("policy", "ppm"):
        ckpt = checkpoints.read(store, round_no, kind)
        if ckpt:
            print(f"  {kind:13} {_training_line(ckpt.metrics)}")
    print("\nSolve rate by level:\n" + markdown(s["by_level"]))
    print(f"\nData: {store.root}  (Parquet: <table>/round_{round_no}/shard_*.parquet)")
    print("Query it:  rstar sql \"select level, count(*) from problems group by level\"")
    print("           rstar query            (lists the named queries: checks, solve_rate_by_level, ...)")
    print("           rstar views            (CREATE VIEW statements for the DuckDB CLI)")


def _training_line(m: dict) -> str:
    parts = [f"loss {m['first_loss']:.3f} -> {m['final_loss']:.3f}" if m.get("final_loss") is not None else ""]
    for key, label in (("eval_loss", "eval loss"), ("eval_accuracy", "held-out pair accuracy"),
                       ("heldout_greedy_pass1", "held-out greedy pass@1"), ("train_s", "train s")):
        if m.get(key) is not None:
            parts.append(f"{label} {m[key]:.3f}" if isinstance(m[key], float) and key != "train_s" else
                         f"{label} {m[key]}")
    return "  ".join(p for p in parts if p)


def _search_wall(store, round_no: int) -> float:
    from rstar_pipeline.warehouse.views import query

    rows = query(store, "SELECT sum(wall_s) AS s FROM search_shards WHERE round = $r", {"r": round_no}).to_pylist()
    return (rows[0]["s"] or 0.0) if rows else 0.0


# ---------------------------------------------------------------- SQL


def cmd_sql(args) -> int:
    text = Path(args.file).read_text() if args.file else args.query
    if not text:
        raise ValueError("give a query or -f FILE")
    return _run_sql(text, {}, args)


def cmd_query(args) -> int:
    from rstar_pipeline.warehouse.views import named_queries, query_params

    queries = named_queries()
    if not args.name:
        for name, sql in queries.items():
            first = next((line[2:].strip() for line in sql.splitlines() if line.startswith("--")), "")
            print(f"{name:24} {first}")
        return 0
    if args.name not in queries:
        raise KeyError(f"no query {args.name!r}; known: {', '.join(queries)}")
    sql = queries[args.name]
    given = dict(kv.split("=", 1) for kv in args.param)
    params = {name: _param_value(given.get(name)) for name in query_params(sql)}
    return _run_sql(sql, params, args)


def _param_value(text: str | None):
    if text is None:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def _run_sql(text: str, params: dict, args) -> int:
    from rstar_pipeline.warehouse.store import Warehouse
    from rstar_pipeline.warehouse.views import query

    import duckdb

    try:
        rows = query(Warehouse(store_root()), text, params).to_pylist()
    except duckdb.Error as e:  # the user's SQL: say what DuckDB says, without a traceback
        raise ValueError(f"SQL: {e}") from e
    if args.format == "json":
        print(json.dumps(rows, indent=2, default=str, ensure_ascii=False))
    elif args.format == "csv":
        import csv

        if rows:
            writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        print(_table(rows, args.width))
    return 0


def _table(rows: list[dict], width: int) -> str:
    if not rows:
        return "(no rows)"
    def cut(value) -> str:
        text = str(value).replace("\n", "\\n")
        return text if width <= 0 or len(text) <= width else text[:width - 1] + "…"

    cells = [[cut(v) for v in r.values()] for r in rows]
    head = list(rows[0])
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()
    return "\n".join([line(head), line(["-" * w for w in widths]), *(line(c) for c in cells),
                      f"({len(rows)} row{'s' if len(rows) != 1 else ''})"])


def cmd_views(args) -> int:
    from rstar_pipeline.warehouse.store import Warehouse
    from rstar_pipeline.warehouse.views import view_statements

    statements = view_statements(Warehouse(store_root()))
    if not statements:
        print(f"-- nothing written yet under {store_root()}")
    print("\n".join(statements))
    return 0


def cmd_summary(args) -> int:
    _print_summary(args.round)
    return 0


def cmd_eval(args) -> int:
    from rstar_pipeline import checkpoints
    from rstar_pipeline.evaluation import EvalConfig, evaluate_checkpoint, table6
    from rstar_pipeline.llm.config import GeneratorConfig, ScorerConfig
    from rstar_pipeline.warehouse.store import Warehouse

    store = Warehouse(store_root())
    config = EvalConfig(benchmarks=tuple(args.benchmark), methods=tuple(args.method), limit=args.limit, n=args.n,
                        temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed,
                        mcts_rollouts=args.mcts_rollouts, mcts_samples=args.mcts_samples, mcts_runs=args.mcts_runs,
                        mcts_temperature=args.mcts_temperature, mcts_top_n=args.mcts_top_n,
                        mcts_pick=args.mcts_pick, answer_matches_output=args.answer_check,
                        generator=GeneratorConfig(backend=args.backend, base_urls=tuple(args.base_url)),
                        scorer=ScorerConfig(backend="vllm" if args.backend == "vllm" else "transformers"))
    policy = checkpoints.resolve(store, args.model)
    ppm = checkpoints.resolve(store, args.ppm) if args.ppm else None
    rows, rejected = evaluate_checkpoint(store, max(policy.round, 0), policy, ppm, config)
    for r in rejected:
        print(f"left out: {r.source} row {r.row}: {r.reason}", file=sys.stderr)
    print(table6(rows))
    print(f"\n{len(rows)} rows in the evaluations table: rstar sql \"select * from evaluations\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
