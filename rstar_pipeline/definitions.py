"""Dagster definitions: problems, the base model, rounds 1-4, their evaluations, the demo summary, and
the jobs (round_1..round_4, evolve, evaluate, demo)."""

from dagster import Definitions, in_process_executor

from rstar_pipeline.assets.demo import demo_job, demo_summary
from rstar_pipeline.assets.evaluation import EVAL_ASSETS, evaluate_job
from rstar_pipeline.assets.models import base_model
from rstar_pipeline.assets.problems import problems
from rstar_pipeline.assets.resources import WarehouseResource
from rstar_pipeline.assets.rounds import ALL_ROUNDS, evolve_job, round_job
from rstar_pipeline.schedule import ROUNDS

defs = Definitions(
    assets=[problems, base_model, *(a for r in ROUNDS for a in ALL_ROUNDS[r]), *EVAL_ASSETS, demo_summary],
    jobs=[*(round_job(r) for r in ROUNDS), evolve_job(), evaluate_job(), demo_job()],
    resources={"warehouse": WarehouseResource()},
    # steps share one process: on 2 cores a process per step only adds start-up time
    executor=in_process_executor,
)
