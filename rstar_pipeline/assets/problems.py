"""The `problems` asset: the problem set, validated and split into shards."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from rstar_pipeline.assets.config import dagster_config, to_core
from rstar_pipeline.assets.partitions import NUM_SHARDS, one_run_per_shard, shards
from rstar_pipeline.assets.resources import WarehouseResource
from rstar_pipeline.problemsets import ProblemsConfig
from rstar_pipeline.stages import write_problem_shards
from rstar_pipeline.warehouse.summaries import markdown

ProblemsRunConfig = dagster_config(ProblemsConfig)


@asset(partitions_def=shards, backfill_policy=one_run_per_shard, group_name="problems", kinds={"parquet"})
def problems(context: AssetExecutionContext, config: ProblemsRunConfig, warehouse: WarehouseResource) -> MaterializeResult:
    """One row per problem with its accepted answers; rows that fail validation go to rejected_problems."""
    core = to_core(config, ProblemsConfig)
    written = write_problem_shards(warehouse.store(), core, context.partition_keys, NUM_SHARDS)
    for r in written.rejected[:20]:
        context.log.warning(f"rejected {r.source} row {r.row}: {r.reason}")
    rejected_rows = [{"source": r.source, "row": r.row, "reason": r.reason} for r in written.rejected[:100]]
    return MaterializeResult(metadata={
        "problems": sum(written.problems.values()),
        "rejected": len(written.rejected),
        "problems_in_set": written.total_valid,
        "rejected_in_set": written.total_rejected,
        "per_shard": MetadataValue.json(written.problems),
        "rejected_rows": MetadataValue.md(markdown(rejected_rows)),
        "config": MetadataValue.json(config.model_dump()),
    })
