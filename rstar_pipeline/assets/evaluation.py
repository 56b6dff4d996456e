"""The `round_r/eval` assets and the `evaluate` job: each finished round's policy (and PPM) on the
configured benchmarks and methods, rows in the `evaluations` table, and in the metadata the Table-6
markdown over every evaluated round and a PNG chart of accuracy by round. A round whose policy is not
trained yet is skipped, so `evaluate` can run at any point of the self-evolution."""

import base64
from dataclasses import asdict

from dagster import (AssetExecutionContext, AssetKey, AssetSelection, MaterializeResult, MetadataValue, asset,
                     define_asset_job)

from rstar_pipeline import checkpoints
from rstar_pipeline.assets.config import dagster_config, to_core
from rstar_pipeline.assets.resources import WarehouseResource
from rstar_pipeline.evaluation import EvalConfig, accuracy, accuracy_chart, evaluate_checkpoint, round_rows, table6
from rstar_pipeline.schedule import ROUNDS, policy_ref

EvalRunConfig = dagster_config(EvalConfig)


def eval_asset(r: int):
    @asset(key=AssetKey([f"round_{r}", "eval"]), group_name="evaluation", kinds={"parquet"},
           deps=[AssetKey([f"round_{r}", "policy"]), AssetKey([f"round_{r}", "ppm"])])
    def round_eval(context: AssetExecutionContext, config: EvalRunConfig, warehouse: WarehouseResource):
        """Round r's policy (and PPM) on the benchmarks: greedy, best-of-N by the PPM, majority vote, MCTS."""
        store, cfg = warehouse.store(), to_core(config, EvalConfig)
        policy, ppm = checkpoints.read(store, r, "policy"), checkpoints.read(store, r, "ppm")
        if policy is None:
            context.log.info(f"round {r}: no policy yet, nothing to evaluate")
            return MaterializeResult(metadata={"skipped": f"{policy_ref(r)} is not trained yet"})
        rows, rejected = evaluate_checkpoint(store, r, policy, ppm, cfg)
        for bad in rejected:
            context.log.warning(f"benchmark {bad.source} row {bad.row} left out: {bad.reason}")
        by_method = {f"{m}/{b}": round(v, 4) for (m, b), v in accuracy(rows, ("method", "benchmark")).items()}
        every = round_rows(store)
        chart = accuracy_chart(every, store.root / "reports" / "accuracy_by_round.png")
        image = base64.b64encode(chart.read_bytes()).decode()
        return MaterializeResult(metadata={
            **by_method, "policy": MetadataValue.path(policy.path), "ppm": ppm.path if ppm else "none",
            "table6": MetadataValue.md(table6(every)), "chart": MetadataValue.path(str(chart)),
            "chart_preview": MetadataValue.md(f"![accuracy by round](data:image/png;base64,{image})"),
            "rejected_rows": len(rejected), "config": MetadataValue.json(asdict(cfg))})

    return round_eval


EVAL_ASSETS = [eval_asset(r) for r in ROUNDS]


def evaluate_job():
    return define_asset_job("evaluate", selection=AssetSelection.assets(*EVAL_ASSETS),
                            description="Every finished round's policy and PPM on the configured benchmarks.")
