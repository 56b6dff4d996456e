"""Assets of one self-evolution round and the jobs that run them.

Round r: `round_r/mcts_trees` (partitioned by problem shard; from round 2 on it searches with
`round_{r-1}/policy`, from round 3 on with `round_{r-1}/ppm` too) → `round_r/trajectories` and
`round_r/preference_pairs` (partitioned) → `round_r/policy` (SFT from the base model) →
`round_r/ppm` (from that policy). Jobs: `round_r` for one round, `evolve` for rounds 1-4 in order.
Each asset is a thin loop over its run's shards or a single call into the core, plus metadata.
"""

import time

import pydantic
from dagster import (AssetExecutionContext, AssetKey, AssetsDefinition, AssetSelection, Config, Failure,
                     MaterializeResult, MetadataValue, asset, define_asset_job)

from rstar_pipeline import checkpoints, stages
from rstar_pipeline.assets.config import dagster_config, to_core
from rstar_pipeline.assets.models import base_model
from rstar_pipeline.assets.partitions import ALL_SHARDS_TAGS, one_run_per_shard, shards
from rstar_pipeline.assets.problems import problems
from rstar_pipeline.assets.resources import WarehouseResource
from rstar_pipeline.llm.config import GeneratorConfig, ScorerConfig
from rstar_pipeline.miniworld.teacher import TeacherConfig
from rstar_pipeline.sandbox import SandboxConfig
from rstar_pipeline.schedule import ROUNDS, round_defaults
from rstar_pipeline.search.config import SearchConfig
from rstar_pipeline.search.extract import PairConfig, TrajectoryConfig
from rstar_pipeline.training.ppm import PPMTrainingConfig
from rstar_pipeline.evaluation import HeldoutConfig, heldout_accuracy
from rstar_pipeline.training.sft import PolicyTrainingConfig
from rstar_pipeline.warehouse.summaries import markdown, pair_summary, search_summary, trajectory_summary

TrajectoryRunConfig, PairRunConfig = dagster_config(TrajectoryConfig), dagster_config(PairConfig)
PPMRunConfig = dagster_config(PPMTrainingConfig)


def _mcts_config(r: int) -> type[Config]:
    """Round r's search config: the schedule's defaults (round_defaults) on the core dataclasses."""
    defaults = round_defaults(r)
    search = dagster_config(SearchConfig, **defaults["search"])
    generator = dagster_config(GeneratorConfig, **defaults["generator"])
    teacher, scorer, sandbox = (dagster_config(c) for c in (TeacherConfig, ScorerConfig, SandboxConfig))
    processes = pydantic.Field(default=1, ge=1, description=(
        "shards searched at once, each in a worker process of one torch thread (rstar_pipeline.parallel): the "
        "trees are the same; on 2 cores, 2 processes search the mini world's rounds 2-3 1.24-1.29x faster (bench/shards.py)"))
    return type(f"MctsTreesConfig{r}", (Config,), {
        "__annotations__": {"search": search, "generator": generator, "scorer": scorer, "teacher": teacher,
                            "sandbox": sandbox, "processes": int},
        "search": search(), "generator": generator(), "scorer": scorer(), "teacher": teacher(), "sandbox": sandbox(),
        "processes": processes})


class PolicyRunConfig(Config):
    training: dagster_config(PolicyTrainingConfig) = dagster_config(PolicyTrainingConfig)()
    heldout: dagster_config(HeldoutConfig) = dagster_config(HeldoutConfig)()


def round_assets(r: int) -> list[AssetsDefinition]:
    group = f"round_{r}"
    common = dict(partitions_def=shards, backfill_policy=one_run_per_shard, group_name=group, kinds={"parquet"})
    previous = [AssetKey([f"round_{r - 1}", "policy"])] if r > 1 else []
    previous += [AssetKey([f"round_{r - 1}", "ppm"])] if r > 2 else []
    MctsConfig = _mcts_config(r)

    @asset(key=AssetKey([group, "mcts_trees"]), deps=[problems, *previous], **common)
    def mcts_trees(context: AssetExecutionContext, config: MctsConfig, warehouse: WarehouseResource) -> MaterializeResult:
        """One row per search-tree node (tree_nodes): step text, execution result, visits and Q."""
        store = warehouse.store()
        try:
            spec = stages.prepare_search(store, r, to_core(config.search, SearchConfig),
                                         to_core(config.generator, GeneratorConfig), to_core(config.scorer, ScorerConfig),
                                         to_core(config.teacher, TeacherConfig), to_core(config.sandbox, SandboxConfig))
        except FileNotFoundError as e:
            raise Failure(description=str(e)) from e

        def log(result: stages.ShardSearch) -> None:
            verb = "kept (same identity)" if result.skipped else f"searched in {result.wall_s:.1f}s"
            context.log.info(f"{result.shard}: {result.problems} problems, {result.nodes} nodes, {verb}")

        start = time.perf_counter()
        done = stages.search_shards(store, spec, context.partition_keys, config.processes, log)
        wall = time.perf_counter() - start
        return MaterializeResult(metadata=_search_metadata(store, r, context.partition_keys, done, spec, wall))

    @asset(key=AssetKey([group, "trajectories"]), deps=[mcts_trees], **common)
    def trajectories(context: AssetExecutionContext, config: TrajectoryRunConfig,
                     warehouse: WarehouseResource) -> MaterializeResult:
        """One row per root-to-terminal path; the SFT data are the rows with selected_for_sft."""
        store, core = warehouse.store(), to_core(config, TrajectoryConfig)
        for shard in context.partition_keys:
            stages.extract_trajectories(store, r, shard, core)
        summary = trajectory_summary(store, r, context.partition_keys)
        return MaterializeResult(metadata={**summary, "config": MetadataValue.json(config.model_dump())})

    @asset(key=AssetKey([group, "preference_pairs"]), deps=[mcts_trees], **common)
    def preference_pairs(context: AssetExecutionContext, config: PairRunConfig,
                         warehouse: WarehouseResource) -> MaterializeResult:
        """One row per PPM training pair: sibling steps (kind=step) or whole solutions (kind=final)."""
        store, core = warehouse.store(), to_core(config, PairConfig)
        for shard in context.partition_keys:
            stages.extract_pairs(store, r, shard, core)
        summary = pair_summary(store, r, context.partition_keys)
        by_depth = summary.pop("by_depth")
        return MaterializeResult(metadata={**summary, "pairs_by_prefix_depth": MetadataValue.md(markdown(by_depth)),
                                           "config": MetadataValue.json(config.model_dump())})

    @asset(key=AssetKey([group, "policy"]), deps=[trajectories, base_model], group_name=group, kinds={"pytorch"})
    def policy(context: AssetExecutionContext, config: PolicyRunConfig, warehouse: WarehouseResource) -> MaterializeResult:
        """The round's policy: the base model fine-tuned on the round's selected trajectories (a HF folder)."""
        store, heldout = warehouse.store(), to_core(config.heldout, HeldoutConfig)
        evaluate = (lambda path: heldout_accuracy(path, heldout)) if heldout.problems else None
        ckpt, trained = _checkpoint_or_fail(checkpoints.train_round_policy, store, r,
                                            to_core(config.training, PolicyTrainingConfig), evaluate)
        context.log.info(f"policy round {r}: {'trained' if trained else 'kept (same identity)'} -> {ckpt.path}")
        return MaterializeResult(metadata=_checkpoint_metadata(ckpt, trained))

    previous_ppm = [AssetKey([f"round_{r - 1}", "ppm"])] if r > 1 else []  # with init: previous

    @asset(key=AssetKey([group, "ppm"]), deps=[preference_pairs, policy, *previous_ppm], group_name=group,
           kinds={"pytorch"})
    def ppm(context: AssetExecutionContext, config: PPMRunConfig, warehouse: WarehouseResource) -> MaterializeResult:
        """The round's process preference model, from the round's policy or the previous PPM (a HF folder)."""
        ckpt, trained = _checkpoint_or_fail(checkpoints.train_round_ppm, warehouse.store(), r,
                                            to_core(config, PPMTrainingConfig))
        context.log.info(f"ppm round {r}: {'trained' if trained else 'kept (same identity)'} -> {ckpt.path}")
        return MaterializeResult(metadata=_checkpoint_metadata(ckpt, trained))

    return [mcts_trees, trajectories, preference_pairs, policy, ppm]


def _checkpoint_or_fail(train, *args):
    try:
        return train(*args)
    except (FileNotFoundError, ValueError) as e:
        raise Failure(description=str(e)) from e


def _checkpoint_metadata(ckpt: checkpoints.Checkpoint, trained: bool) -> dict:
    numbers = {k: round(v, 4) if isinstance(v, float) else v for k, v in ckpt.metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {"path": MetadataValue.path(ckpt.path), "trained": trained, "base_model": ckpt.base_model,
            "identity": ckpt.identity, **numbers, "config": MetadataValue.json(ckpt.config)}


def _search_metadata(store, r: int, keys: list[str], done: list[stages.ShardSearch], spec, wall: float) -> dict:
    s = search_summary(store, r, keys)
    searched = [d for d in done if not d.skipped]
    wall = wall if searched else 0.0
    return {
        "problems": s["problems"], "solved": s["solved"], "solve_rate": round(s["solve_rate"], 4),
        "nodes": s["nodes"], "mean_depth": round(s["mean_depth"], 3),
        "mean_answer_depth": round(s["mean_answer_depth"], 3),
        "programs": s["programs"], "failed_programs": s["failed_programs"],
        "shards_searched": len(searched), "shards_kept": len(done) - len(searched),
        "search_processes": len({d.pid for d in searched}),
        "search_wall_s": round(wall, 2),
        "nodes_per_s": round(sum(d.nodes for d in searched) / wall, 1) if wall else 0.0,
        "terminals": MetadataValue.md(markdown(s["terminals"])),
        "q_histogram": MetadataValue.md(markdown(s["q_histogram"])),
        "solve_rate_by_level": MetadataValue.md(markdown(s["by_level"])),
        "config": MetadataValue.json(spec.to_json()),
    }


ALL_ROUNDS = {r: round_assets(r) for r in ROUNDS}
TAG_HELP = ("For one shard, override the range tags: --tags '{\"dagster/asset_partition_range_start\": "
            "\"shard_003\", \"dagster/asset_partition_range_end\": \"shard_003\"}'")


def round_job(r: int):
    first = [problems, base_model] if r == 1 else []
    return define_asset_job(f"round_{r}", selection=AssetSelection.assets(*first, *ALL_ROUNDS[r]),
                            tags=ALL_SHARDS_TAGS,
                            description=f"Round {r} over all problem shards in one run. {TAG_HELP}")


def evolve_job():
    every = [a for r in ROUNDS for a in ALL_ROUNDS[r]]
    return define_asset_job("evolve", selection=AssetSelection.assets(problems, base_model, *every),
                            tags=ALL_SHARDS_TAGS, description="Rounds 1 to 4 in order, in one run.")
