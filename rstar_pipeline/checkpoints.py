"""Models of the pipeline: the base model, each round's policy and PPM, and the `checkpoints` table.

Stage functions (what the Dagster assets call): build or register the base model, fine-tune a round's
policy from its selected trajectories, train its PPM from its preference pairs. Each writes a Hugging
Face folder under `<store>/models/` (trained in a temporary folder, moved into place when complete)
and one `checkpoints` row with its identity (config, inputs and initialisation), so that a re-run with
the same identity keeps the model instead of training again. `resolve` turns `round_<r>/policy` or
`round_<r>/ppm` into a folder, with a clear error naming the asset to materialize when it is missing.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa

from rstar_pipeline.miniworld.student import StudentConfig, build_student
from rstar_pipeline.training.ppm import PPMTrainingConfig
from rstar_pipeline.training.sft import PolicyTrainingConfig
from rstar_pipeline.warehouse.store import Warehouse
from rstar_pipeline.warehouse.views import query

MINIWORLD_STUDENT = "miniworld-student"
REFERENCE = re.compile(r"^round_(\d+)/(policy|ppm)$")


@dataclass(frozen=True)
class BaseModelConfig:
    name: str = field(default=MINIWORLD_STUDENT, metadata={
        "help": "'miniworld-student' (built here, no download) or a Hugging Face folder / hub id, e.g. "
                "Qwen/Qwen2.5-Math-7B"})
    student: StudentConfig = field(default_factory=StudentConfig, metadata={"help": "the mini-world student's shape"})


@dataclass(frozen=True)
class Checkpoint:
    round: int
    kind: str
    path: str
    base_model: str
    identity: str
    train_rows: int
    eval_rows: int
    metrics: dict
    config: dict


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def read(store: Warehouse, round: int, kind: str) -> Checkpoint | None:
    rows = store.read("checkpoints", kind, round).to_pylist()
    if not rows:
        return None
    r = rows[0]
    external = r["kind"] == "base" and r["base_model"] != MINIWORLD_STUDENT  # a hub id, not a folder here
    if not external and not Path(r["path"]).exists():
        return None
    return Checkpoint(r["round"], r["kind"], r["path"], r["base_model"], r["identity"], r["train_rows"],
                      r["eval_rows"], json.loads(r["metrics"]), json.loads(r["config"]))


def resolve(store: Warehouse, ref: str) -> Checkpoint:
    """`round_<r>/policy`, `round_<r>/ppm` or `base` -> its checkpoint (error naming the missing asset)."""
    if ref == "base":
        found = read(store, 0, "base")
        if found is None:
            raise FileNotFoundError("no base model yet: materialize the asset models/base first")
        return found
    m = REFERENCE.match(ref)
    if not m:
        return Checkpoint(-1, "external", ref, ref, digest(ref), 0, 0, {}, {})
    found = read(store, int(m.group(1)), m.group(2))
    if found is None:
        raise FileNotFoundError(f"{ref} is not trained yet: materialize the asset {ref} first "
                                f"(e.g. rstar run round_{m.group(1)})")
    return found


def _write(store: Warehouse, ckpt: Checkpoint) -> Checkpoint:
    row = {**asdict(ckpt), "shard": ckpt.kind, "metrics": json.dumps(ckpt.metrics, default=str),
           "config": json.dumps(ckpt.config, default=str),
           "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    store.write("checkpoints", pa.Table.from_pylist([row]), ckpt.kind, ckpt.round, {"identity": ckpt.identity})
    return ckpt


def _models_dir(store: Warehouse, *parts: str) -> Path:
    return store.root / "models" / Path(*parts)


def _train_into(final: Path, train) -> dict:
    """Run `train(tmp_dir)` and move the folder into place only when it completed."""
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        metrics = train(tmp)
        shutil.rmtree(tmp / "_trainer", ignore_errors=True)
        old = final.with_name(f".{final.name}.old")
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        return metrics
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- stages


def build_base(store: Warehouse, config: BaseModelConfig) -> tuple[Checkpoint, bool]:
    """The base model of every round's policy; returns (checkpoint, built now)."""
    if config.name != MINIWORLD_STUDENT:
        identity = digest({"external": config.name})
        return _write(store, Checkpoint(0, "base", config.name, config.name, identity, 0, 0, {}, asdict(config))), False
    identity = digest({"student": asdict(config.student)})
    done = read(store, 0, "base")
    if done and done.identity == identity:
        return done, False
    final = _models_dir(store, "base", f"{MINIWORLD_STUDENT}-{identity[:8]}")
    facts = _train_into(final, lambda tmp: build_student(tmp, config.student))
    return _write(store, Checkpoint(0, "base", str(final), MINIWORLD_STUDENT, identity, 0, 0, facts,
                                    asdict(config))), True


def sft_rows(store: Warehouse, round: int, previous_rounds: bool = False) -> list[dict]:
    rounds = "round <= $r" if previous_rounds else "round = $r"
    return query(store, "SELECT problem_id, leaf_node_id, prompt, response AS completion FROM trajectories "
                        f"WHERE {rounds} AND selected_for_sft ORDER BY round, problem_id, rank",
                 {"r": round}).to_pylist()


def pair_rows(store: Warehouse, round: int, previous_rounds: bool = False) -> list[dict]:
    rounds = "round <= $r" if previous_rounds else "round = $r"
    return query(store, "SELECT problem_id, kind, prefix_node_id, chosen_node_id, rejected_node_id, prompt, chosen, "
                        f"rejected, weight FROM preference_pairs WHERE {rounds} ORDER BY ALL", {"r": round}).to_pylist()


def train_round_policy(store: Warehouse, round: int, config: PolicyTrainingConfig, evaluate=None
                       ) -> tuple[Checkpoint, bool]:
    """Fine-tune the base model (or, with init 'previous', round r-1's policy) on the round's SFT rows;
    `evaluate(path) -> metrics` runs afterwards."""
    from rstar_pipeline.training.sft import train_policy

    start = resolve(store, "base" if config.init == "base" or round == 1 else f"round_{round - 1}/policy")
    rows = sft_rows(store, round, config.include_previous_rounds)
    if not rows:
        raise ValueError(f"round {round}: no trajectory is selected for SFT (the round's search found no correct, "
                         "error-free solution); search more (rollouts, problems) or set training."
                         "include_previous_rounds: true to train on the earlier rounds' data too")
    identity = digest({"base": start.identity, "config": asdict(config),
                       "rows": digest([(r["problem_id"], r["completion"]) for r in rows])})
    done = read(store, round, "policy")
    if done and done.identity == identity:
        return done, False
    final = _models_dir(store, f"round_{round}", "policy")

    def train(tmp: Path) -> dict:
        metrics = train_policy(start.path, rows, tmp, config)
        return {**metrics, **(evaluate(str(tmp)) if evaluate else {})}

    metrics = _train_into(final, train)
    return _write(store, Checkpoint(round, "policy", str(final), start.path, identity, metrics["train_rows"],
                                    metrics["eval_rows"], metrics, asdict(config))), True


def train_round_ppm(store: Warehouse, round: int, config: PPMTrainingConfig) -> tuple[Checkpoint, bool]:
    """Train the round's PPM on its preference pairs, initialised from the round's policy (or, with init
    'previous', round r-1's PPM)."""
    from rstar_pipeline.training.ppm import train_ppm

    previous = config.init == "previous" and round > 1
    start = resolve(store, f"round_{round - 1}/ppm" if previous else f"round_{round}/policy")
    pairs = pair_rows(store, round, config.include_previous_rounds)
    if not pairs:
        raise ValueError(f"round {round}: no preference pairs (no node had siblings whose Q differ by the "
                         "pairs' min_margin); search more or set include_previous_rounds: true")
    identity = digest({"start": start.identity, "config": asdict(config),
                       "pairs": digest([(p["problem_id"], p["chosen"], p["rejected"], p["weight"]) for p in pairs])})
    done = read(store, round, "ppm")
    if done and done.identity == identity:
        return done, False
    final = _models_dir(store, f"round_{round}", "ppm")
    metrics = _train_into(final, lambda tmp: train_ppm(start.path, pairs, tmp, config))
    return _write(store, Checkpoint(round, "ppm", str(final), start.path, identity, metrics["train_pairs"],
                                    metrics["eval_pairs"], metrics, asdict(config))), True
