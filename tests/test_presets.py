"""The run-config presets under assets/configs: the mini world's (each job's default) and the GPU ones
with the paper's values. Each must validate against its job's config schema, so that a typo in a field
name fails here and not on a GPU machine after the model has loaded."""

from pathlib import Path

import pytest
import yaml
from dagster import validate_run_config

from rstar_pipeline.definitions import defs
from rstar_pipeline.paths import CONFIGS_DIR
from rstar_pipeline.schedule import ROUNDS

PRESETS = sorted(CONFIGS_DIR.glob("**/*.yaml"))


def test_every_round_and_the_evaluation_have_a_mini_and_a_gpu_preset():
    names = {p.relative_to(CONFIGS_DIR).as_posix() for p in PRESETS}
    assert names == {f"{d}{job}.yaml" for d in ("", "gpu/") for job in [f"round_{r}" for r in ROUNDS] + ["evaluate"]}


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.relative_to(CONFIGS_DIR).as_posix())
def test_preset_validates_against_its_job(path: Path):
    job = defs.resolve_job_def(path.stem)
    validate_run_config(job, yaml.safe_load(path.read_text()))


def test_gpu_presets_carry_the_paper_values():
    gpu = {r: yaml.safe_load((CONFIGS_DIR / "gpu" / f"round_{r}.yaml").read_text())["ops"] for r in ROUNDS}
    search = {r: gpu[r][f"round_{r}__mcts_trees"]["config"]["search"] for r in ROUNDS}
    assert [search[r]["rollouts"] for r in ROUNDS] == [8, 16, 16, 16]
    assert [search[r].get("ppm_init", False) for r in ROUNDS] == [False, False, True, True]
    assert search[4]["unsolved_rollouts"] > search[4]["rollouts"]
    assert gpu[1]["models__base"]["config"]["name"] == "Qwen/Qwen2.5-Math-7B"
    for r in ROUNDS:
        assert gpu[r][f"round_{r}__policy"]["config"]["training"]["learning_rate"] == 7e-6
        assert gpu[r][f"round_{r}__ppm"]["config"]["learning_rate"] == 7e-6
        # the paper trains on its trajectories only: the mini world's answer-copy rows stay off
        assert gpu[r][f"round_{r}__policy"]["config"]["training"].get("answer_copy_share", 0) == 0
        if r > 1:
            assert gpu[r][f"round_{r}__mcts_trees"]["config"]["generator"] == {
                **gpu[r][f"round_{r}__mcts_trees"]["config"]["generator"], "backend": "vllm",
                "model": f"round_{r - 1}/policy"}


def test_gpu_evaluation_preset_carries_the_reference_values():
    ops = yaml.safe_load((CONFIGS_DIR / "gpu" / "evaluate.yaml").read_text())["ops"]
    assert set(ops) == {f"round_{r}__eval" for r in ROUNDS}
    config = ops["round_4__eval"]["config"]
    assert (config["mcts_rollouts"], config["mcts_samples"], config["mcts_runs"], config["mcts_top_n"]) == (12, 32, 64, 4)
    assert config["generator"]["backend"] == config["scorer"]["backend"] == "vllm"


def test_demo_config_is_every_mini_preset_with_every_seed_moved():
    """`rstar demo --seed 2` runs the demo job with rounds 1-4 and evaluate.yaml merged, every seed
    (problems, student, teacher, search, training, held-out check, PPM, evaluation) moved by 2000 and
    nothing else changed; the config validates against the demo job."""
    from rstar_pipeline import cli

    base, moved = cli.demo_config(0), cli.demo_config(2)
    validate_run_config(defs.resolve_job_def("demo"), moved)
    ops = moved["ops"]
    assert {f"round_{r}__{a}" for r in ROUNDS for a in ("mcts_trees", "policy", "ppm", "eval")} <= set(ops)
    for op, path in cli.DEMO_SEEDS:
        before, after = base["ops"][op]["config"], ops[op]["config"]
        for key in path:
            before, after = before[key], after[key]
        assert after == before + 2000, (op, path)
    assert base["ops"]["problems"]["config"]["seed"] == yaml.safe_load(
        (CONFIGS_DIR / "round_1.yaml").read_text())["ops"]["problems"]["config"]["seed"]
    for r in ROUNDS:
        assert ops[f"round_{r}__mcts_trees"]["config"]["search"]["rollouts"] == \
            base["ops"][f"round_{r}__mcts_trees"]["config"]["search"]["rollouts"]
    assert cli._offset_seeds({"a": [{"seed": 1, "n": 3}], "seed": "x"}, 5) == {"a": [{"seed": 6, "n": 3}], "seed": "x"}
