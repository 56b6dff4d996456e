"""The `demo/summary` asset and the `demo` job: the four rounds, their evaluation and one table that
says whether self-evolution worked (rstar_pipeline/demo.py), with the teacher's greedy pass@1 as the
baseline, a PNG chart and `<store>/demo/summary.json`."""

import base64

from dagster import (AssetExecutionContext, AssetKey, AssetSelection, Failure, MaterializeResult, MetadataValue,
                     asset, define_asset_job)

from rstar_pipeline import demo
from rstar_pipeline.assets.evaluation import EVAL_ASSETS
from rstar_pipeline.assets.models import base_model
from rstar_pipeline.assets.partitions import ALL_SHARDS_TAGS
from rstar_pipeline.assets.problems import problems
from rstar_pipeline.assets.resources import WarehouseResource
from rstar_pipeline.assets.rounds import ALL_ROUNDS
from rstar_pipeline.evaluation import load_benchmark
from rstar_pipeline.schedule import ROUNDS


@asset(key=AssetKey(["demo", "summary"]), deps=EVAL_ASSETS, group_name="evaluation", kinds={"json"})
def demo_summary(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Per round: search solve rate, SFT rows, policy greedy pass@1 (overall and by level), best-of-N by
    the PPM, MCTS with the PPM, PPM held-out pair accuracy; and the teacher's greedy pass@1."""
    store = warehouse.store()
    try:
        config, teacher = demo.eval_config(store), demo.round_1_teacher(store)
    except FileNotFoundError as e:
        raise Failure(description=str(e)) from e
    teacher_rows = demo.evaluate_teacher(store, config, teacher)
    _, heldout, _ = load_benchmark(demo.BENCHMARK, config)
    rows = demo.summary(store, teacher_rows, heldout)
    paths = demo.write(store, rows)
    context.log.info("\n" + demo.markdown(rows))
    image = base64.b64encode(paths["chart"].read_bytes()).decode()
    return MaterializeResult(metadata={
        "summary": MetadataValue.md(demo.markdown(rows)), "json": MetadataValue.path(str(paths["json"])),
        "chart": MetadataValue.path(str(paths["chart"])),
        "chart_preview": MetadataValue.md(f"![demo](data:image/png;base64,{image})"),
        "heldout_problems": len(heldout)})


def demo_job():
    every = [a for r in ROUNDS for a in ALL_ROUNDS[r]]
    return define_asset_job("demo", selection=AssetSelection.assets(problems, base_model, *every, *EVAL_ASSETS,
                                                                    demo_summary),
                            tags=ALL_SHARDS_TAGS,
                            description="Rounds 1-4, their evaluation and the demo table (rstar demo).")
