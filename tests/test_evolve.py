"""Rounds 1-4 through Dagster on a tiny preset: real search with the trained policy, real SFT and PPM
training, checkpoints that load back, and the rule that a round needs its predecessor's models."""

import json
import shutil

import pytest
from dagster import DagsterInstance

from rstar_pipeline import checkpoints, cli
from rstar_pipeline.definitions import defs
from rstar_pipeline.llm.base import SamplingConfig
from rstar_pipeline.llm.hf import TransformersGenerator, TransformersScorer
from rstar_pipeline.steps import SEARCH_STOP, load_template
from rstar_pipeline.warehouse.store import Warehouse
from rstar_pipeline.warehouse.views import named_queries, query

SANDBOX = {"preload": ["math", "fractions"], "timeout_s": 5.0}
TRAIN = {"max_steps": 6, "batch_size": 8, "gradient_accumulation": 1, "warmup_steps": 1, "learning_rate": 0.003,
         "include_previous_rounds": True}


def tiny_round(r: int, processes: int = 1) -> dict:
    search = {"rollouts": 2, "n_samples": 2, "seed": r}
    if r > 1:
        search.update(max_problems_per_shard=1, max_tokens=40, min_level=2)
    if r == 4:
        search["unsolved_rollouts"] = 3
    mcts = {"search": search, "sandbox": SANDBOX, "processes": processes}
    if r > 1:
        mcts["generator"] = {"batch_size": 32}
    init = {"init": "previous"} if r > 2 else {}  # rounds 3-4 continue round r-1's models, round 2 does not
    return {f"round_{r}__mcts_trees": {"config": mcts},
            f"round_{r}__policy": {"config": {"training": {**TRAIN, **init}, "heldout": {"problems": 6, "max_tokens": 40}}},
            f"round_{r}__ppm": {"config": {"max_steps": 4, "batch_size": 4, "eval_fraction": 0.4,
                                           "include_previous_rounds": True, **init}}}


BASE = {"problems": {"config": {"count": 16, "seed": 3}},
        "models__base": {"config": {"student": {"corpus_problems": 150, "vocab_size": 500, "hidden_size": 64,
                                                "layers": 2, "heads": 2, "kv_heads": 1, "intermediate_size": 128}}}}
LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


PROCESSES = {3: 2}  # round 3 searches two shards at a time in worker processes (policy and PPM in each)


def run(job: str, store, monkeypatch, rounds, processes=PROCESSES, **kwargs):
    monkeypatch.setenv("RSTAR_STORE", str(store))
    ops = dict(BASE) if 1 in rounds else {}
    for r in rounds:
        ops.update(tiny_round(r, processes.get(r, 1)))
    return defs.resolve_job_def(job).execute_in_process(run_config={"ops": ops, **LOGS}, **kwargs,
                                                        instance=DagsterInstance.ephemeral(), raise_on_error=False)


@pytest.fixture(scope="module")
def evolved(tmp_path_factory):
    store = tmp_path_factory.mktemp("evolve")
    with pytest.MonkeyPatch.context() as mp:
        result = run("evolve", store, mp, [1, 2, 3, 4])
    assert result.success, [str(e.step_failure_data.error) for e in result.all_events if e.is_step_failure]
    return Warehouse(store), result


def test_evolve_runs_four_rounds_and_records_every_checkpoint(evolved):
    """One evolve run: trees for rounds 1-4, and a policy and a PPM per round in the checkpoints table."""
    store, _ = evolved
    rounds = query(store, "SELECT round, count(*) AS n FROM tree_nodes GROUP BY 1 ORDER BY 1").to_pylist()
    assert [r["round"] for r in rounds] == [1, 2, 3, 4]
    kinds = query(store, "SELECT round, kind FROM checkpoints ORDER BY round, kind").to_pylist()
    assert [(k["round"], k["kind"]) for k in kinds] == [(0, "base")] + [(r, k) for r in (1, 2, 3, 4)
                                                                      for k in ("policy", "ppm")]


def test_later_rounds_search_with_the_previous_models(evolved):
    """Round r searches with round r-1's policy; from round 3 on, Q starts at round r-1's PPM score."""
    store, _ = evolved
    config = {r["round"]: json.loads(r["config"]) for r in
              query(store, "SELECT round, any_value(config) AS config FROM search_shards GROUP BY 1").to_pylist()}
    assert "teacher" in config[1] and "policy" not in config[1]
    for r in (2, 3, 4):
        assert config[r]["policy"]["path"].endswith(f"round_{r - 1}/policy")
    assert "ppm" not in config[2] and config[3]["ppm"]["path"].endswith("round_2/ppm")
    scored = query(store, "SELECT round, count(*) FILTER (WHERE ppm_score IS NOT NULL) AS n FROM tree_nodes "
                          "GROUP BY 1 ORDER BY 1").to_pylist()
    assert [s["n"] for s in scored[:2]] == [0, 0]  # rounds 1-2 are terminal-guided


def test_models_start_from_the_base_and_policy_or_from_the_previous_round(evolved):
    """init 'base' / 'policy' (the paper's): a round's policy starts from the base model and its PPM from that
    policy; init 'previous' (rounds 3-4 here): from round r-1's policy and round r-1's PPM."""
    store, _ = evolved
    start = {(r["round"], r["kind"]): r["base_model"] for r in
             query(store, "SELECT round, kind, base_model FROM checkpoints WHERE round > 0").to_pylist()}
    base = checkpoints.resolve(store, "base").path
    assert start[(1, "policy")] == start[(2, "policy")] == base
    assert start[(1, "ppm")].endswith("round_1/policy") and start[(2, "ppm")].endswith("round_2/policy")
    for r in (3, 4):
        assert start[(r, "policy")].endswith(f"round_{r - 1}/policy") and start[(r, "ppm")].endswith(f"round_{r - 1}/ppm")


def test_later_rounds_search_only_problems_of_min_level(evolved):
    """min_level (rounds 2-4 here) keeps the easy problems out of the search, before max_problems_per_shard."""
    store, _ = evolved
    levels = query(store, "SELECT t.round, min(p.level) AS low, count(DISTINCT problem_id) AS n FROM tree_nodes t "
                          "JOIN problems p USING (problem_id) GROUP BY 1 ORDER BY 1").to_pylist()
    assert levels[0]["low"] == 1  # round 1: every level
    assert all(r["low"] >= 2 and r["n"] > 0 for r in levels[1:])


def test_round_4_gives_unsolved_problems_more_rollouts(evolved):
    """Problems no earlier round solved get unsolved_rollouts; the budget is part of the shard identity."""
    store, _ = evolved
    config = query(store, "SELECT config FROM search_shards WHERE round = 4 LIMIT 1").to_pylist()[0]["config"]
    assert json.loads(config)["search"]["unsolved_rollouts"] == 3


def test_checkpoints_load_back_and_generate_or_score(evolved):
    """The saved policy generates steps and the saved PPM scores prefixes, in (-1, 1)."""
    store, _ = evolved
    policy, ppm = checkpoints.resolve(store, "round_4/policy"), checkpoints.resolve(store, "round_4/ppm")
    prompt = load_template("sft").build("Mia has 3 apples. How many apples does Mia have now?")
    out = TransformersGenerator(policy.path).generate([prompt], SamplingConfig(n=2, max_tokens=8, stop=SEARCH_STOP))
    assert len(out[0]) == 2
    scores = TransformersScorer(ppm.path).score([prompt, prompt + "<code>\nx = 3\n<end_of_step>"])
    assert len(scores) == 2 and all(-1 < s < 1 for s in scores)
    metrics = ppm.metrics
    assert metrics["train_pairs"] > 0 and "eval_accuracy" in metrics


def test_invariants_hold_in_every_round(evolved):
    """checks.sql passes on all four rounds."""
    store, _ = evolved
    rows = query(store, named_queries()["checks"]).to_pylist()
    assert {r["check"]: r["violations"] for r in rows} == {r["check"]: 0 for r in rows}


def test_a_round_alone_needs_its_predecessor(tmp_path, monkeypatch):
    """round_2 on an empty store fails with a message naming the missing asset."""
    result = run("round_2", tmp_path, monkeypatch, [2])
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "round_1/policy" in str(failure.step_failure_data.user_failure_data or failure.step_failure_data.error)


def test_search_in_worker_processes_writes_the_trees_of_one_process(evolved, tmp_path, monkeypatch):
    """Round 3 searched its shards two at a time in worker processes; searched again in this process (a copy
    of the store from before round 3), every shard's trees are the same, column for column."""
    from dagster import AssetKey

    store, evolve = evolved
    searched = evolve.asset_materializations_for_node("round_3__mcts_trees")[0].metadata
    assert searched["search_processes"].value == 2
    copy = Warehouse(shutil.copytree(store.root, tmp_path / "store", ignore=shutil.ignore_patterns("round_3", "round_4")))
    result = run("round_3", copy.root, monkeypatch, [3], processes={}, asset_selection=[AssetKey(["round_3", "mcts_trees"])])
    assert result.success
    assert result.asset_materializations_for_node("round_3__mcts_trees")[0].metadata["search_processes"].value == 1
    shards = query(store, "SELECT shard, identity FROM search_shards WHERE round = 3 ORDER BY shard").to_pylist()
    assert len(shards) >= 2 and shards == query(copy, "SELECT shard, identity FROM search_shards WHERE round = 3 "
                                                      "ORDER BY shard").to_pylist()
    for row in shards:
        assert store.read("tree_nodes", row["shard"], 3).equals(copy.read("tree_nodes", row["shard"], 3))


def test_rerun_keeps_trained_models(evolved, monkeypatch):
    """Running round 4 again with the same inputs keeps the search and the checkpoints (no retraining)."""
    store, _ = evolved
    before = query(store, "SELECT kind, identity, created_at FROM checkpoints WHERE round = 4 ORDER BY kind").to_pylist()
    result = run("round_4", store.root, monkeypatch, [4])
    assert result.success
    after = query(store, "SELECT kind, identity, created_at FROM checkpoints WHERE round = 4 ORDER BY kind").to_pylist()
    assert after == before  # same identities, and not written again


@pytest.fixture(scope="module")
def evaluated(evolved):
    """The evaluate job run on the evolved store."""
    store, _ = evolved
    config = {"benchmarks": ["miniworld"], "methods": ["greedy", "best_of_n", "majority", "mcts", "mcts_majority"],
              "miniworld_problems": 3, "n": 2, "max_tokens": 32, "mcts_rollouts": 2, "mcts_samples": 2, "mcts_runs": 2,
              "mcts_limit": 2}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RSTAR_STORE", str(store.root))
        result = defs.resolve_job_def("evaluate").execute_in_process(
            run_config={"ops": {f"round_{r}__eval": {"config": config} for r in (1, 2, 3, 4)}, **LOGS},
            instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.success, [str(e.step_failure_data.error) for e in result.all_events if e.is_step_failure]
    return store, result


def test_evaluate_job_tables_every_finished_round(evaluated, monkeypatch, capsys):
    """`evaluate` on the evolved store: rows for rounds 1-4 in the evaluations table, and the Table-6
    markdown and the chart in the asset metadata."""
    store, result = evaluated
    monkeypatch.setenv("RSTAR_STORE", str(store.root))
    rows = query(store, "SELECT round, method, count(*) AS n FROM evaluations GROUP BY ALL ORDER BY ALL").to_pylist()
    assert rows == [{"round": r, "method": m, "n": 2 if m.startswith("mcts") else 3} for r in (1, 2, 3, 4)
                    for m in ("best_of_n", "greedy", "majority", "mcts", "mcts_majority")]
    metadata = result.asset_materializations_for_node("round_4__eval")[0].metadata
    table = metadata["table6"].value
    assert table.splitlines()[0] == "| round | method | miniworld |" and "| 4 | mcts_majority |" in table
    assert metadata["rejected_rows"].value == 0
    cli._print_table6()  # what `rstar run evaluate` prints after the run
    printed = capsys.readouterr().out
    assert "| round | method | miniworld |" in printed and "| 4 | mcts_majority |" in printed
    assert metadata["chart"].value.endswith(".png") and metadata["chart_preview"].value.startswith("![")


def test_demo_summary_has_a_row_per_round_and_the_teacher(evaluated, monkeypatch):
    """The demo/summary asset on the evaluated store: summary.json with rounds 1-4 and the teacher row,
    every figure a fraction that agrees with the tables it comes from; markdown and PNG beside it."""
    from dagster import AssetKey, materialize

    from rstar_pipeline.assets.demo import demo_summary
    from rstar_pipeline.assets.resources import WarehouseResource

    store, _ = evaluated
    monkeypatch.setenv("RSTAR_STORE", str(store.root))
    result = materialize([demo_summary], resources={"warehouse": WarehouseResource()},
                         instance=DagsterInstance.ephemeral(), selection=[AssetKey(["demo", "summary"])])
    assert result.success
    rows = json.loads((store.root / "demo" / "summary.json").read_text())
    assert [r["round"] for r in rows] == [1, 2, 3, 4, "teacher"]
    for r in rows[:4]:
        assert {"policy_greedy", "best_of_n", "mcts_ppm", "ppm_pair_accuracy", "search_solve_rate"} <= set(r)
        assert all(0 <= r[k] <= 1 for k in ("policy_greedy", "best_of_n", "mcts_ppm", "search_solve_rate"))
        # the PPM on the policy's own samples: recorded with the best_of_n rows (None when no problem had a right
        # and a wrong sample)
        figures = store.meta("evaluations", "miniworld.best_of_n", r["round"])["figures"]
        assert r["ppm_sample_pair_accuracy"] == (None if figures["ppm_sample_pair_accuracy"] is None
                                                 else round(figures["ppm_sample_pair_accuracy"], 4))
        assert figures["ppm_sample_pairs"] >= figures["ppm_sample_pair_problems"]
    greedy = query(store, "SELECT round, avg(correct::int) AS a FROM evaluations WHERE method = 'greedy' "
                          "AND round > 0 GROUP BY 1 ORDER BY 1").to_pylist()
    assert [round(g["a"], 4) for g in greedy] == [r["policy_greedy"] for r in rows[:4]]
    # MCTS's baseline: greedy on exactly the problems MCTS ran on
    same = query(store, "SELECT g.round, avg(g.correct::int) AS a FROM evaluations g JOIN evaluations m USING "
                        "(round, problem_id) WHERE g.method = 'greedy' AND m.method = 'mcts' AND g.round > 0 "
                        "GROUP BY 1 ORDER BY 1").to_pylist()
    assert [round(g["a"], 4) for g in same] == [r["greedy_on_mcts_problems"] for r in rows[:4]]
    teacher = query(store, "SELECT count(*) AS n, avg(correct::int) AS a FROM evaluations WHERE model = 'teacher'"
                    ).to_pylist()[0]
    assert teacher["n"] == 3 and rows[4]["policy_greedy"] == round(teacher["a"], 4)
    assert (store.root / "demo" / "summary.png").read_bytes()[:4] == b"\x89PNG"
    assert "| teacher |" in (store.root / "demo" / "summary.md").read_text()


def test_search_processes_refuse_vllm(tmp_path):
    """Worker processes would each start a vLLM engine on the one GPU: refused before anything starts."""
    from rstar_pipeline import stages
    from rstar_pipeline.llm.config import GeneratorConfig, ScorerConfig
    from rstar_pipeline.miniworld.teacher import TeacherConfig
    from rstar_pipeline.sandbox import SandboxConfig
    from rstar_pipeline.search.config import SearchConfig

    spec = stages.RoundSearch(2, SearchConfig(), GeneratorConfig(backend="vllm"), ScorerConfig(), TeacherConfig(),
                              SandboxConfig())
    with pytest.raises(ValueError, match="search processes > 1 are for CPU backends"):
        stages.search_shards(Warehouse(tmp_path), spec, ["shard_000", "shard_001"], processes=2)
