"""Assets of one self-evolution round: `round_r/mcts_trees` → `round_r/trajectories` and
`round_r/preference_pairs`, all partitioned by problem shard, plus the `round_r` job.

Each asset is a thin loop over its run's shards that calls `stages` and attaches statistics.
"""


from contextlib import closing

from dagster import (AssetExecutionContext, AssetKey, AssetsDefinition, AssetSelection, Config, MaterializeResult,
                     MetadataValue, asset, define_asset_job)

from rstar_pipeline import stages
from rstar_pipeline.assets.config import dagster_config, to_core
from rstar_pipeline.assets.partitions import ALL_SHARDS_TAGS, one_run_per_shard, shards
from rstar_pipeline.assets.problems import problems
from rstar_pipeline.assets.resources import WarehouseResource
from rstar_pipeline.miniworld.teacher import BootstrapTeacher, TeacherConfig
from rstar_pipeline.sandbox import SandboxConfig, make_sandbox
from rstar_pipeline.search.config import SearchConfig
from rstar_pipeline.search.extract import PairConfig, TrajectoryConfig
from rstar_pipeline.warehouse.summaries import markdown, pair_summary, search_summary, trajectory_summary

_Search, _Teacher, _Sandbox = (dagster_config(c) for c in (SearchConfig, TeacherConfig, SandboxConfig))
TrajectoryRunConfig, PairRunConfig = dagster_config(TrajectoryConfig), dagster_config(PairConfig)


class MctsTreesConfig(Config):
    search: _Search = _Search()
    teacher: _Teacher = _Teacher()
    sandbox: _Sandbox = _Sandbox()


def round_assets(r: int) -> list[AssetsDefinition]:
    group = f"round_{r}"
    common = dict(partitions_def=shards, backfill_policy=one_run_per_shard, group_name=group, kinds={"parquet"})

    @asset(key=AssetKey([group, "mcts_trees"]), deps=[problems], **common)
    def mcts_trees(context: AssetExecutionContext, config: MctsTreesConfig,
                   warehouse: WarehouseResource) -> MaterializeResult:
        """One row per search-tree node (tree_nodes): step text, execution result, visits and Q."""
        store = warehouse.store()
        spec = stages.RoundSearch(r, to_core(config.search, SearchConfig), to_core(config.teacher, TeacherConfig),
                                  to_core(config.sandbox, SandboxConfig))
        generator = BootstrapTeacher(spec.teacher)
        done = []
        with closing(make_sandbox(spec.sandbox)) as sandbox:
            for shard in context.partition_keys:
                result = stages.search_shard(store, spec, shard, generator, sandbox)
                verb = "kept (same identity)" if result.skipped else f"searched in {result.wall_s:.1f}s"
                context.log.info(f"{shard}: {result.problems} problems, {result.nodes} nodes, {verb}")
                done.append(result)
        return MaterializeResult(metadata=_search_metadata(store, r, context.partition_keys, done, spec))

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

    return [mcts_trees, trajectories, preference_pairs]


def _search_metadata(store, r: int, keys: list[str], done: list[stages.ShardSearch], spec) -> dict:
    s = search_summary(store, r, keys)
    searched = [d for d in done if not d.skipped]
    wall = sum(d.wall_s for d in searched)
    return {
        "problems": s["problems"], "solved": s["solved"], "solve_rate": round(s["solve_rate"], 4),
        "nodes": s["nodes"], "mean_depth": round(s["mean_depth"], 3),
        "mean_answer_depth": round(s["mean_answer_depth"], 3),
        "programs": s["programs"], "failed_programs": s["failed_programs"],
        "shards_searched": len(searched), "shards_kept": len(done) - len(searched),
        "search_wall_s": round(wall, 2),
        "nodes_per_s": round(sum(d.nodes for d in searched) / wall, 1) if wall else 0.0,
        "terminals": MetadataValue.md(markdown(s["terminals"])),
        "q_histogram": MetadataValue.md(markdown(s["q_histogram"])),
        "solve_rate_by_level": MetadataValue.md(markdown(s["by_level"])),
        "config": MetadataValue.json(spec.to_json()),
    }


def round_job(r: int, assets: list[AssetsDefinition]):
    return define_asset_job(
        f"round_{r}", selection=AssetSelection.assets(problems, *assets), tags=ALL_SHARDS_TAGS,
        description=f"Round {r} over all problem shards in one run. For one shard, override the range tags: "
                    f"--tags '{{\"dagster/asset_partition_range_start\": \"shard_003\", "
                    f"\"dagster/asset_partition_range_end\": \"shard_003\"}}'")
