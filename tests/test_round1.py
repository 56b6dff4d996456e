"""Round 1 through Dagster on small presets: real runs, real Parquet, SQL checks, resume after kill -9."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from dagster import DagsterInstance

from rstar_pipeline.assets.partitions import SHARDS
from rstar_pipeline.definitions import defs
from rstar_pipeline.miniworld.problems import generate
from rstar_pipeline.paths import PROJECT_ROOT
from rstar_pipeline.warehouse.store import Warehouse
from rstar_pipeline.warehouse.views import named_queries, query

PRESET = yaml.safe_load((PROJECT_ROOT / "assets" / "configs" / "round_1.yaml").read_text())


TINY_TRAINING = {
    "models__base": {"student": {"corpus_problems": 150, "vocab_size": 500, "hidden_size": 64, "layers": 2,
                                 "heads": 2, "kv_heads": 1, "intermediate_size": 128}},
    "round_1__policy": {"training": {"max_steps": 4, "batch_size": 8}, "heldout": {"problems": 4, "max_tokens": 32}},
    "round_1__ppm": {"max_steps": 2, "batch_size": 4},
}


def preset(count: int, seed: int, rollouts: int, n_samples: int) -> dict:
    """The default preset (assets/configs/round_1.yaml), smaller; training only long enough to run."""
    config = json.loads(json.dumps(PRESET))
    config["ops"]["problems"]["config"].update(count=count, seed=seed)
    config["ops"]["round_1__mcts_trees"]["config"]["search"].update(rollouts=rollouts, n_samples=n_samples)
    for op, values in TINY_TRAINING.items():
        config["ops"][op]["config"].update(values)
    config["loggers"]["console"]["config"]["log_level"] = "WARNING"
    return config


SMALL = preset(count=40, seed=5, rollouts=4, n_samples=3)


def run_round(store_root, monkeypatch, run_config=SMALL, tags=None):
    monkeypatch.setenv("RSTAR_STORE", str(store_root))
    job = defs.resolve_job_def("round_1")
    return job.execute_in_process(run_config=run_config, instance=DagsterInstance.ephemeral(), tags=tags,
                                  raise_on_error=False)


def metadata(result, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        if "/".join(event.asset_key.path) == asset:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise KeyError(asset)


def table_rows(store_root, table, order):
    return query(Warehouse(store_root), f"SELECT * FROM {table} ORDER BY {order}").to_pylist()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:
        result = run_round(root, mp)
    assert result.success
    return root, result


def test_round_1_materializes_every_asset(small_run):
    """One run covers all shards; each asset reports row counts and statistics."""
    root, result = small_run
    trees = metadata(result, "round_1/mcts_trees")
    assert trees["problems"] == 40 and trees["shards_searched"] == len(SHARDS)
    assert 0.5 < trees["solve_rate"] <= 1.0 and trees["nodes"] > 40
    assert "| q_from | nodes |" in trees["q_histogram"]
    assert metadata(result, "problems")["problems"] == 40
    assert metadata(result, "round_1/trajectories")["sft_selected"] > 0
    assert metadata(result, "round_1/preference_pairs")["pairs"] > 0
    for table in ("problems", "tree_nodes", "trajectories", "preference_pairs"):
        assert len(list((root / table).glob("**/*.parquet"))) == len(SHARDS)


def test_consistency_checks_all_pass(small_run):
    """Every invariant in warehouse/queries/checks.sql holds (SFT correct, margins, budgets, no dups)."""
    root, _ = small_run
    rows = query(Warehouse(root), named_queries()["checks"]).to_pylist()
    assert len(rows) >= 10
    assert {r["check"]: r["violations"] for r in rows} == {r["check"]: 0 for r in rows}


def test_sft_rows_and_pairs_meet_the_contract(small_run):
    """Direct SQL over the views: SFT rows are correct and clean, pair margins >= 0.5, nodes within budget."""
    store = Warehouse(small_run[0])
    bad_sft = query(store, "SELECT count(*) AS n FROM trajectories WHERE selected_for_sft "
                           "AND (NOT is_correct OR has_exec_error)").to_pylist()[0]["n"]
    low_margin = query(store, "SELECT count(*) AS n FROM preference_pairs "
                              "WHERE q_chosen - q_rejected < 0.5 - 1e-9").to_pylist()[0]["n"]
    per_problem = query(store, "SELECT problem_id, count(*) AS n, max(n_children) AS kids, max(depth) AS d "
                               "FROM tree_nodes GROUP BY 1").to_pylist()
    assert bad_sft == 0 and low_margin == 0 and len(per_problem) == 40
    assert all(r["kids"] <= 3 and r["d"] <= 17 and r["n"] <= 1 + 4 * 17 * 3 for r in per_problem)


def test_trajectory_text_query_rebuilds_the_sft_response(small_run):
    """The trajectory_text query walks tree_nodes up from a leaf and returns the SFT response text."""
    store = Warehouse(small_run[0])
    sft = query(store, "SELECT problem_id, leaf_node_id, response FROM trajectories WHERE selected_for_sft "
                       "ORDER BY problem_id, rank LIMIT 1").to_pylist()[0]
    rebuilt = query(store, named_queries()["trajectory_text"],
                    {"round": 1, "problem_id": sft["problem_id"], "leaf_node_id": sft["leaf_node_id"]}).to_pylist()
    assert rebuilt[0]["solution"] == sft["response"]


def test_rerun_keeps_shards_with_the_same_identity(small_run, monkeypatch):
    """Re-running with the same config searches nothing and leaves the rows unchanged."""
    root, _ = small_run
    before = table_rows(root, "tree_nodes", "problem_id, node_id")
    result = run_round(root, monkeypatch)
    trees = metadata(result, "round_1/mcts_trees")
    assert result.success and trees["shards_kept"] == len(SHARDS) and trees["shards_searched"] == 0
    assert table_rows(root, "tree_nodes", "problem_id, node_id") == before


def test_changed_config_searches_again(tmp_path, monkeypatch):
    """A different search config changes the identity: shards are searched again and replaced."""
    config = json.loads(json.dumps(SMALL))
    config["ops"]["problems"]["config"]["count"] = 10
    assert run_round(tmp_path, monkeypatch, config).success
    config["ops"]["round_1__mcts_trees"]["config"]["search"]["rollouts"] = 2
    result = run_round(tmp_path, monkeypatch, config)
    assert metadata(result, "round_1/mcts_trees")["shards_searched"] == len(SHARDS)
    shards = query(Warehouse(tmp_path), "SELECT DISTINCT json_extract(config, '$.search.rollouts') AS r "
                                        "FROM search_shards").to_pylist()
    assert shards == [{"r": "2"}]


def test_shards_as_separate_runs_equal_one_run(small_run, tmp_path, monkeypatch):
    """Scale-out: one run per shard (range tags) writes exactly what the single run wrote."""
    for shard in SHARDS:
        tags = {"dagster/asset_partition_range_start": shard, "dagster/asset_partition_range_end": shard}
        assert run_round(tmp_path, monkeypatch, tags=tags).success
    for table, order in [("tree_nodes", "problem_id, node_id"), ("preference_pairs", "problem_id, kind, "
                         "prefix_node_id, chosen_node_id, rejected_node_id")]:
        assert table_rows(tmp_path, table, order) == table_rows(small_run[0], table, order)


def test_bad_rows_are_rejected_and_the_round_goes_on(tmp_path, monkeypatch):
    """A problem file with malformed rows: good rows are searched, each bad row is reported."""
    good = [{"question": p.question, "answer": str(p.answer)} for p in generate(12, 9)]
    lines = [json.dumps(r) for r in good[:6]] + [
        json.dumps({"question": "Mia has 3 apples. How many apples does Mia have now?"}),  # missing answer
        json.dumps({"question": "", "answer": "1"}),
        json.dumps(good[0]),  # duplicate
        json.dumps({"question": "x" * 1_000_000, "answer": "1"}),
    ] + [json.dumps(r) for r in good[6:]]
    path = tmp_path / "problems.jsonl"
    path.write_bytes("\n".join(lines).encode() + b'\n{"question": "caf\xe9", "answer": "1"}\n')
    config = json.loads(json.dumps(SMALL))
    config["ops"]["problems"]["config"] = {"source": str(path)}
    result = run_round(tmp_path / "store", monkeypatch, config)
    assert result.success
    assert metadata(result, "problems")["rejected"] == 5 and metadata(result, "problems")["problems"] == 12
    rejected = query(Warehouse(tmp_path / "store"), "SELECT row, reason FROM rejected_problems ORDER BY row").to_pylist()
    assert [r["row"] for r in rejected] == [7, 8, 9, 10, 17]
    assert ["missing answer" in rejected[0]["reason"], "empty question" in rejected[1]["reason"],
            "duplicate" in rejected[2]["reason"], "limit" in rejected[3]["reason"],
            "UTF-8" in rejected[4]["reason"]] == [True] * 5
    assert metadata(result, "round_1/mcts_trees")["problems"] == 12


def test_unreadable_problem_file_fails_naming_the_file(tmp_path, monkeypatch):
    """A file that cannot be read fails the problems step with the file's path in the message."""
    config = json.loads(json.dumps(SMALL))
    config["ops"]["problems"]["config"] = {"source": str(tmp_path / "missing.jsonl")}
    result = run_round(tmp_path / "store", monkeypatch, config)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "missing.jsonl" in str(failure.step_failure_data.error)


def test_kill_9_then_rerun_has_no_duplicate_or_missing_rows(tmp_path, monkeypatch):
    """kill -9 part-way through `rstar run`, run the same command again: the same data as an uninterrupted run."""
    medium = preset(count=64, seed=6, rollouts=4, n_samples=4)
    config_file = tmp_path / "preset.yaml"
    config_file.write_text(yaml.safe_dump(medium))
    store = tmp_path / "store"
    env = {**os.environ, "RSTAR_STORE": str(store), "DAGSTER_HOME": str(tmp_path / "dagster")}
    cmd = [sys.executable, "-m", "rstar_pipeline.cli", "run", "round_1", "-c", str(config_file)]
    proc = subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while len(list((store / "tree_nodes").glob("*/*.parquet"))) < 2 and time.time() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(list((store / "tree_nodes").glob("*/*.parquet")))
    assert 2 <= written < len(SHARDS), "the kill did not land part-way"
    done = subprocess.run(cmd, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Round 1" in done.stdout and "solved" in done.stdout
    reference = tmp_path / "reference"
    assert run_round(reference, monkeypatch, medium).success
    for table, order in [("problems", "problem_id"), ("tree_nodes", "problem_id, node_id"),
                         ("trajectories", "problem_id, leaf_node_id"),
                         ("preference_pairs", "problem_id, kind, prefix_node_id, chosen_node_id, rejected_node_id")]:
        assert table_rows(store, table, order) == table_rows(reference, table, order), table
    leftovers = [p for p in store.glob("**/*") if p.name.endswith(".tmp")]
    assert leftovers == []
