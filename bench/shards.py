"""A round's search with its shards in one process against shards in worker processes, in one run.

Copies a store that has finished round r-1 twice and searches round r's shards on each copy with the
round's preset (`assets/configs/round_r.yaml`): once in this process (torch's default thread count,
the baseline), once `--processes` shards at a time in workers of one thread (`stages.search_shards`).
Prints the wall time of each, the ratio, and whether the two wrote the same trees (every column of
`tree_nodes`); no thresholds.

    .venv/bin/python bench/shards.py --store warehouse/store --round 2 [--processes 2] [--shards 4]
    .venv/bin/python bench/shards.py --store warehouse/store --round 3 --models 1   # with a PPM, after round 1 only
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from rstar_pipeline import stages
from rstar_pipeline.llm.config import GeneratorConfig, ScorerConfig
from rstar_pipeline.miniworld.teacher import TeacherConfig
from rstar_pipeline.paths import CONFIGS_DIR
from rstar_pipeline.sandbox import SandboxConfig
from rstar_pipeline.search.config import SearchConfig
from rstar_pipeline.warehouse.store import Warehouse


def preset_spec(store: Warehouse, round: int, models: int | None) -> stages.RoundSearch:
    """Round `round`'s preset search, with round `models`' policy and PPM if given."""
    ops = yaml.safe_load((CONFIGS_DIR / f"round_{round}.yaml").read_text())["ops"]
    cfg = ops[f"round_{round}__mcts_trees"]["config"]
    tuples = lambda c: {k: tuple(v) if isinstance(v, list) else v for k, v in c.items()}
    generator, scorer = tuples(cfg.get("generator", {})), tuples(cfg.get("scorer", {}))
    if models:
        generator["model"], scorer["model"] = f"round_{models}/policy", f"round_{models}/ppm"
    return stages.prepare_search(store, round, SearchConfig(**tuples(cfg.get("search", {}))),
                                 GeneratorConfig(**generator), ScorerConfig(**scorer), TeacherConfig(),
                                 SandboxConfig(**tuples(cfg.get("sandbox", {}))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--round", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--models", type=int, help="search with round N's policy and PPM instead of the preset's")
    parser.add_argument("--shards", type=int, default=8, help="the first N shards")
    args = parser.parse_args()

    shards = stages.shard_keys(8)[:args.shards]
    walls, trees = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for processes in (1, args.processes):
            root = Path(tmp) / f"p{processes}"
            shutil.copytree(args.store, root, ignore=shutil.ignore_patterns(f"round_{args.round}*"))
            store = Warehouse(root)
            spec = preset_spec(store, args.round, args.models)
            start = time.perf_counter()
            done = stages.search_shards(store, spec, shards, processes)
            walls[processes] = time.perf_counter() - start
            nodes = sum(d.nodes for d in done)
            print(f"processes {processes}: {len(shards)} shards, {sum(d.problems for d in done)} problems, {nodes} nodes, "
                  f"{walls[processes]:.1f} s ({nodes / walls[processes]:.0f} nodes/s)", flush=True)
            trees[processes] = [store.read("tree_nodes", s, args.round) for s in shards]
    same = all(a.equals(b) for a, b in zip(trees[1], trees[args.processes]))
    print(f"{args.processes} processes / 1: {walls[1] / walls[args.processes]:.2f}x faster; same trees: {same}")


if __name__ == "__main__":
    main()
