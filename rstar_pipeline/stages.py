"""Pipeline stages, one shard at a time: read inputs from the warehouse, call the core, write.

These are what the Dagster assets wrap; a notebook or another orchestrator can call them directly.
A search shard is skipped when its file already holds the result of the same identity (same
problems, configs, prompt template and code version), so a killed round resumes where it stopped;
every write is atomic, so a re-run never duplicates or loses rows.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import time
from concurrent.futures import as_completed
from contextlib import closing
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import pyarrow as pa

import rstar_pipeline
from rstar_pipeline import checkpoints, parallel
from rstar_pipeline.llm.base import Generator, PPMScorer
from rstar_pipeline.llm.config import GeneratorConfig, ScorerConfig, make_generator, make_scorer
from rstar_pipeline.miniworld.teacher import TeacherConfig
from rstar_pipeline.problemsets import Problem, ProblemsConfig, Rejected, load_problems, problem_id, shard_of
from rstar_pipeline.sandbox import make_sandbox
from rstar_pipeline.sandbox.base import Sandbox, SandboxConfig
from rstar_pipeline.search import extract
from rstar_pipeline.search.config import SearchConfig
from rstar_pipeline.schedule import policy_ref, ppm_ref
from rstar_pipeline.search.mcts import run_search
from rstar_pipeline.steps import load_template
from rstar_pipeline.warehouse.schemas import TREE_NODES
from rstar_pipeline.warehouse.store import Warehouse
from rstar_pipeline.warehouse.views import query


def shard_keys(num_shards: int) -> list[str]:
    width = max(3, len(str(num_shards - 1)))
    return [f"shard_{i:0{width}d}" for i in range(num_shards)]


# ---------------------------------------------------------------- problems


@dataclass
class ProblemShards:
    problems: dict[str, int]  # shard -> problems written
    rejected: list[Rejected]  # rejected rows that fall in the written shards
    total_valid: int
    total_rejected: int


def write_problem_shards(store: Warehouse, config: ProblemsConfig, shards: Sequence[str],
                         num_shards: int) -> ProblemShards:
    """Load and validate the problem set; write the `problems` and `rejected_problems` of `shards`."""
    problems, rejected = load_problems(config)
    keys = shard_keys(num_shards)
    meta = {"config": asdict(config), "num_shards": num_shards, "valid": len(problems), "rejected": len(rejected)}
    counts, kept = {}, []
    for shard in shards:
        rows = [p for p in problems if keys[shard_of(p.problem_id, num_shards)] == shard]
        bad = [r for r in rejected if keys[shard_of(problem_id(r.source, f"row {r.row}"), num_shards)] == shard]
        store.write("problems", _problems_table(rows, shard), shard, meta=meta)
        store.write("rejected_problems", _rejected_table(bad, shard), shard, meta=meta)
        counts[shard], kept = len(rows), kept + bad
    return ProblemShards(counts, kept, len(problems), len(rejected))


def _problems_table(rows: list[Problem], shard: str) -> pa.Table:
    return pa.table({
        "problem_id": [p.problem_id for p in rows], "source": [p.source for p in rows],
        "split": [p.split for p in rows], "question": [p.question for p in rows],
        "answers": [list(p.answers) for p in rows], "level": [p.level for p in rows],
        "subject": [p.subject for p in rows], "shard": [shard] * len(rows)})


def _rejected_table(rows: list[Rejected], shard: str) -> pa.Table:
    return pa.table({
        "source": [r.source for r in rows], "row": [r.row for r in rows], "problem_id": [r.problem_id for r in rows],
        "reason": [r.reason for r in rows], "preview": [r.preview for r in rows], "shard": [shard] * len(rows)})


def read_problems(store: Warehouse, shard: str) -> list[Problem]:
    if not store.path("problems", shard).exists():
        raise FileNotFoundError(f"problems of {shard} are not written yet: materialize the problems asset first")
    table = store.read("problems", shard)
    return [Problem(r["problem_id"], r["source"], r["split"], r["question"], tuple(r["answers"]), r["level"],
                    r["subject"]) for r in table.to_pylist()]


# ---------------------------------------------------------------- search


@dataclass(frozen=True)
class RoundSearch:
    """Everything that determines a round's trees, besides the problems: configs and resolved models."""

    round: int
    search: SearchConfig
    generator: GeneratorConfig
    scorer: ScorerConfig
    teacher: TeacherConfig
    sandbox: SandboxConfig
    policy: checkpoints.Checkpoint | None = None  # None for the teacher
    ppm: checkpoints.Checkpoint | None = None  # None without ppm_init

    def to_json(self) -> dict:
        sandbox = {k: v for k, v in asdict(self.sandbox).items() if k not in ("workers", "cache_size")}
        out = {"round": self.round, "search": asdict(self.search), "generator": asdict(self.generator),
               "sandbox": sandbox, "template": load_template(self.search.template).to_json(),
               "version": rstar_pipeline.__version__}
        if self.policy is None:
            out["teacher"] = asdict(self.teacher)
        else:
            out["policy"] = {"path": self.policy.path, "identity": self.policy.identity}
        if self.ppm is not None:
            out["ppm"] = {"path": self.ppm.path, "identity": self.ppm.identity, "scorer": asdict(self.scorer)}
        return out

    def identity(self, problems: Sequence[Problem], budgets: Sequence[int]) -> str:
        content = sorted((p.problem_id, p.answers, b) for p, b in zip(problems, budgets))
        blob = json.dumps({"spec": self.to_json(), "problems": content}, sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


def prepare_search(store: Warehouse, round: int, search: SearchConfig, generator: GeneratorConfig,
                   scorer: ScorerConfig, teacher: TeacherConfig, sandbox: SandboxConfig) -> RoundSearch:
    """Resolve the models a round searches with; a missing one is an error naming its asset."""
    policy = ppm = None
    if generator.backend != "teacher":
        policy = checkpoints.resolve(store, generator.model or policy_ref(round - 1))
    if search.ppm_init:
        ppm = checkpoints.resolve(store, scorer.model or ppm_ref(round - 1))
    return RoundSearch(round, search, generator, scorer, teacher, sandbox, policy, ppm)


@dataclass
class ShardSearch:
    shard: str
    skipped: bool
    problems: int
    nodes: int
    wall_s: float
    pid: int = 0  # the process that searched it (0: kept from an earlier run)


def search_shards(store: Warehouse, spec: RoundSearch, shards: Sequence[str], processes: int = 1,
                  on_done: Callable[[ShardSearch], None] = lambda result: None) -> list[ShardSearch]:
    """Search `shards` (`search_shard` each), in this process or, with `processes` > 1, that many shards at a
    time in worker processes of one torch thread (`parallel`): the trees are the same either way, since
    every shard is searched alone. `on_done` hears of each shard as it finishes; results in shard order."""
    if processes > 1 and "vllm" in (spec.generator.backend, spec.scorer.backend if spec.ppm else None):
        raise ValueError("search processes > 1 are for CPU backends: each worker would load its own vLLM engine")
    if processes <= 1 or len(shards) < 2:
        generator, scorer = _search_models(spec)
        results = []
        with closing(make_sandbox(spec.sandbox)) as sandbox:
            for shard in shards:
                results.append(search_shard(store, spec, shard, generator, sandbox, scorer))
                on_done(results[-1])
        return results
    with parallel.pool(min(processes, len(shards)), _start_search_worker, (str(store.root), spec)) as workers:
        futures = [workers.submit(_search_in_worker, shard) for shard in shards]
        for future in as_completed(futures):
            on_done(future.result())
        return [future.result() for future in futures]


def _search_models(spec: RoundSearch) -> tuple[Generator, PPMScorer | None]:
    generator = make_generator(spec.generator, spec.policy.path if spec.policy else "", spec.teacher)
    return generator, make_scorer(spec.scorer, spec.ppm.path) if spec.ppm else None


_WORKER: dict = {}  # in a search worker process: its store, spec, models and sandbox


def _start_search_worker(root: str, spec: RoundSearch) -> None:
    generator, scorer = _search_models(spec)
    sandbox = make_sandbox(spec.sandbox)
    atexit.register(sandbox.close)  # a spawned worker runs atexit handlers when the pool shuts down
    _WORKER.update(store=Warehouse(root), spec=spec, generator=generator, scorer=scorer, sandbox=sandbox)


def _search_in_worker(shard: str) -> ShardSearch:
    w = _WORKER
    return search_shard(w["store"], w["spec"], shard, w["generator"], w["sandbox"], w["scorer"])


def search_shard(store: Warehouse, spec: RoundSearch, shard: str, generator: Generator, sandbox: Sandbox,
                 scorer: PPMScorer | None = None) -> ShardSearch:
    """Search one shard's problems and write its `tree_nodes`, unless the same result is on disk."""
    problems = read_problems(store, shard)
    if spec.search.min_level:
        problems = [p for p in problems if p.level is None or p.level >= spec.search.min_level]
    if spec.search.max_problems_per_shard:
        problems = sorted(problems, key=lambda p: p.problem_id)[:spec.search.max_problems_per_shard]
    budgets = rollout_budgets(store, spec, problems)
    identity = spec.identity(problems, budgets)
    done = store.meta("tree_nodes", shard, spec.round)
    if done and done.get("identity") == identity:
        return ShardSearch(shard, True, len(problems), done["stats"]["nodes"], done["stats"]["wall_s"])
    start = time.perf_counter()
    trees, stats = run_search(problems, generator, sandbox, spec.search, scorer=scorer,
                              exec_timeout_s=spec.sandbox.timeout_s, rollouts=budgets)
    cols: dict[str, list] = {}
    for tree in trees:
        for name, values in tree.rows().items():
            cols.setdefault(name, []).extend(values)
    n = len(cols.get("node_id", []))
    table = pa.table({"round": [spec.round] * n, "shard": [shard] * n, **cols}) if n else TREE_NODES.empty_table()
    meta = {"round": spec.round, "shard": shard, "identity": identity, "config": spec.to_json(), "stats": asdict(stats)}
    store.write("tree_nodes", table, shard, spec.round, meta)
    return ShardSearch(shard, False, len(problems), n, time.perf_counter() - start, os.getpid())


def rollout_budgets(store: Warehouse, spec: RoundSearch, problems: Sequence[Problem]) -> list[int]:
    """Rollouts per problem: `unsolved_rollouts` for problems no earlier round solved, if set."""
    if not spec.search.unsolved_rollouts or spec.round == 1:
        return [spec.search.rollouts] * len(problems)
    solved = {r["problem_id"] for r in query(store, "SELECT DISTINCT problem_id FROM tree_nodes WHERE round < $r "
                                                    "AND is_correct", {"r": spec.round}).to_pylist()}
    return [spec.search.rollouts if p.problem_id in solved else spec.search.unsolved_rollouts for p in problems]


# ---------------------------------------------------------------- training data


def _tree_inputs(store: Warehouse, round: int, shard: str, template: str) -> tuple[pa.Table, pa.Table, dict]:
    meta = store.meta("tree_nodes", shard, round)
    if meta is None:
        raise FileNotFoundError(f"tree_nodes of round {round} {shard} are not written yet: "
                                f"materialize round_{round}/mcts_trees first")
    nodes = store.read("tree_nodes", shard, round)
    tpl = load_template(template)
    problems = read_problems(store, shard)
    prompts = pa.table({"problem_id": [p.problem_id for p in problems],
                        "prompt": [tpl.build(p.question) for p in problems]})
    return nodes, prompts, meta


def extract_trajectories(store: Warehouse, round: int, shard: str, config: extract.TrajectoryConfig) -> int:
    nodes, prompts, tree_meta = _tree_inputs(store, round, shard, config.template)
    table = extract.trajectories(nodes, prompts, config)
    store.write("trajectories", table, shard, round, {"config": asdict(config), "trees": tree_meta["identity"]})
    return table.num_rows


def extract_pairs(store: Warehouse, round: int, shard: str, config: extract.PairConfig) -> int:
    nodes, prompts, tree_meta = _tree_inputs(store, round, shard, config.template)
    table = extract.preference_pairs(nodes, prompts, config)
    store.write("preference_pairs", table, shard, round, {"config": asdict(config), "trees": tree_meta["identity"]})
    return table.num_rows
