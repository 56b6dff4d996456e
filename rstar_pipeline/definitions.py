"""Dagster definitions: the problems asset, round 1's assets and the `round_1` job."""

from dagster import Definitions, in_process_executor

from rstar_pipeline.assets.problems import problems
from rstar_pipeline.assets.resources import WarehouseResource
from rstar_pipeline.assets.rounds import round_assets, round_job

round_1 = round_assets(1)

defs = Definitions(
    assets=[problems, *round_1],
    jobs=[round_job(1, round_1)],
    resources={"warehouse": WarehouseResource()},
    # steps share one process: on 2 cores a process per step only adds start-up time
    executor=in_process_executor,
)
