"""Evaluation methods (greedy, best-of-N by the PPM, majority vote) on a tiny policy, benchmarks from
the mini world and from the real eval files, the Table-6 markdown, and `rstar eval` writing the
evaluations table."""

import os
import subprocess
import sys

import pytest

from rstar_pipeline.evaluation import (EvalConfig, _best_of_n, _majority, _vote, _vote_runs, accuracy_chart, evaluate,
                                       load_benchmark, picked_answer, sample_pairs, table6)
from rstar_pipeline.llm.hf import TransformersGenerator
from rstar_pipeline.problemsets import Problem
from rstar_pipeline.sandbox import SandboxConfig, make_sandbox
from rstar_pipeline.search.greedy import GreedyResult
from rstar_pipeline.search.tree import Node
from rstar_pipeline.warehouse.store import Warehouse
from rstar_pipeline.warehouse.views import query
from shared_data import SHARED_DATA, needs_shared

GSM8K = SHARED_DATA / "eval" / "gsm8k_test.json"


def result(prediction, correct, pid="p"):
    return GreedyResult(pid, f"... \\boxed{{{prediction}}}", prediction, correct)


def test_majority_takes_the_most_frequent_answer_in_any_spelling():
    group = [result("\\frac{1}{2}", True), result("3", False), result("\\dfrac12", True), result(None, False)]
    row = _majority(group)
    assert row["prediction"] == "\\frac{1}{2}" and row["correct"] and row["score"] == 0.5
    assert _majority([result(None, False)])["prediction"] is None


def test_vote_clusters_equivalent_answers_and_breaks_ties_by_order():
    assert _vote(["3", "0.5", "\\frac12", None]) == (1, 0.5)
    assert _vote(["3", "4"]) == (0, 0.5)
    assert _vote([None, None]) == (None, 0.0)


def test_vote_over_mcts_runs_keeps_the_top_n_by_ppm_score():
    runs = [("7", 0.1), ("7", 0.2), ("\\frac{1}{2}", 0.9), ("0.5", 0.8), (None, None), ("7", 0.3)]
    assert _vote_runs(runs, top_n=0) == ("7", 0.5)  # 3 of 6 runs
    assert _vote_runs(runs, top_n=3) == ("\\frac{1}{2}", 2 / 3)  # 0.9, 0.8 and 0.3 vote
    assert _vote_runs([("3", 0.2), ("4", 0.6)], top_n=0) == ("4", 0.5)  # a tie goes to the higher Q
    assert _vote_runs([(None, None)], top_n=4) == (None, 0.0)


def answer_node(answer, q, set_aside=False):
    node = Node(node_id=0, parent_id=None, depth=3, kind="answer", text="", final_answer=answer,
                is_correct=False if set_aside else None)
    node.visits, node.value_sum = 1, q
    return node


def test_mcts_pick_by_q_or_by_a_vote_over_the_answers_the_check_keeps():
    nodes = [answer_node("7", 0.1), answer_node("\\frac{1}{2}", 0.9), answer_node("0.5", 0.2),
             answer_node("7", 0.3), answer_node("7", 0.4, set_aside=True), answer_node("7", -1.0, set_aside=True)]
    assert picked_answer(nodes, "q").final_answer == "\\frac{1}{2}"  # the paper: the highest Q
    assert picked_answer(nodes, "vote").q == 0.9  # 1/2 twice against 7 twice (two 7s set aside): the higher Q wins
    assert picked_answer(nodes[:4] + [answer_node("7", 0.0)], "vote").q == 0.3  # three 7s: its highest-Q node
    assert picked_answer(nodes[4:], "vote").q == 0.4  # all set aside: they vote among themselves
    with pytest.raises(ValueError, match="mcts_pick must be one of"):
        EvalConfig(mcts_pick="ppm")


class FixedScorer:
    """A stand-in PPM (named as such) that prefers solutions containing a given text."""

    def __init__(self, liked: str):
        self.liked = liked

    def score(self, prefixes):
        return [0.9 if self.liked in p else -0.5 for p in prefixes]


def test_best_of_n_picks_the_solution_the_ppm_scores_highest():
    problem = Problem("p", "test", "test", "What is 1+1?", ("2",))
    group = [result("3", False), result("2", True), result("4", False)]
    other = Problem("q", "test", "test", "What is 2+2?", ("4",))
    rows, pairs = _best_of_n([problem, other], [group, [result("4", True), result("2", False)]], FixedScorer("{2}"))
    assert [(r["problem_id"], r["prediction"], r["correct"], r["score"]) for r in rows] == [
        ("p", "2", True, 0.9), ("q", "2", False, 0.9)]  # scored in one call, read back per problem
    # p: the right sample beats both wrong ones; q: the wrong one is preferred
    assert pairs == {"ppm_sample_pairs": 3, "ppm_sample_pair_problems": 2, "ppm_sample_pair_accuracy": 2 / 3}
    [row], pairs = _best_of_n([problem], [group], FixedScorer("{4}"))
    assert (row["prediction"], row["correct"]) == ("4", False)
    assert pairs["ppm_sample_pair_accuracy"] == 0.0  # one right sample, scored below a wrong one, tied with the other


def test_best_of_n_with_the_answer_check_sets_aside_answers_that_contradict_their_output():
    """The PPM prefers the sample that boxes 3 after printing 2; with the check the consistent one is
    picked, and only when every sample contradicts its output does the PPM's choice stand."""
    problem = Problem("p", "test", "test", "What is 1+1?", ("2",))
    misread = GreedyResult("p", "print(1 + 1)\n<output>2<end_of_output>\n\\boxed{3}", "3", False)
    right = GreedyResult("p", "print(1 + 1)\n<output>2.0<end_of_output>\n\\boxed{2}", "2", True)
    scorer = FixedScorer("{3}")
    assert _best_of_n([problem], [[misread, right]], scorer)[0][0]["prediction"] == "3"
    [row], figures = _best_of_n([problem], [[misread, right]], scorer, answer_check=True)
    assert (row["prediction"], row["correct"], row["score"]) == ("2", True, -0.5)
    assert figures["answer_mismatch_share"] == 0.5 and figures["ppm_sample_pair_accuracy"] == 0.0  # the PPM's own
    assert _best_of_n([problem], [[misread, misread]], scorer, answer_check=True)[0][0]["prediction"] == "3"


def test_sample_pairs_count_only_problems_with_a_right_and_a_wrong_sample():
    assert sample_pairs([[(True, 0.5), (True, 0.1)], [(False, 0.2)]]) == {
        "ppm_sample_pairs": 0, "ppm_sample_pair_problems": 0, "ppm_sample_pair_accuracy": None}
    assert sample_pairs([[(True, 0.5), (False, 0.5), (False, -0.2)]])["ppm_sample_pair_accuracy"] == 0.5  # a tie is wrong


def test_table6_has_a_row_per_round_and_method_and_a_column_per_benchmark():
    rows = [{"round": r, "method": m, "benchmark": b, "correct": c} for r, m, b, c in [
        (1, "greedy", "gsm8k", True), (1, "greedy", "gsm8k", False), (1, "greedy", "math500", True),
        (2, "greedy", "gsm8k", True), (2, "majority", "gsm8k", False)]]
    assert table6(rows).splitlines() == [
        "| round | method | gsm8k | math500 |", "|---|---|---|---|",
        "| 1 | greedy | 50.0 | 100.0 |", "| 2 | greedy | 100.0 |  |", "| 2 | majority | 0.0 |  |"]


def test_accuracy_chart_is_a_png_with_a_panel_per_benchmark(tmp_path):
    rows = [{"round": r, "method": m, "benchmark": b, "correct": r % 2 == 0} for r in (1, 2)
            for m, b in (("greedy", "gsm8k"), ("mcts", "gsm8k"), ("greedy", "math500"))]
    path = accuracy_chart(rows, tmp_path / "reports" / "chart.png")
    png = path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png[16:20], "big")
    assert width == 800  # two panels of 4 inches at 100 dpi


def test_unknown_method_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="methods must be among"):
        EvalConfig(methods=("beam",))
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_benchmark(str(tmp_path / "nope.json"), EvalConfig())
    with pytest.raises(ValueError, match="mcts_runs must be >= 1"):
        EvalConfig(mcts_runs=0)
    with pytest.raises(ValueError, match=r"\['mcts_majority'\] need a PPM"):
        evaluate(None, None, [], EvalConfig(methods=("greedy", "mcts_majority")), None)


def test_mcts_majority_of_one_run_is_the_mcts_answer(tiny_policy):
    """The first mcts_majority run is the mcts run (same seed), so one run votes for the mcts answer;
    the answers of the tiny policy are valued by a stand-in PPM (no ground truth is used)."""
    config = EvalConfig(methods=("mcts", "mcts_majority"), miniworld_problems=4, max_tokens=48, mcts_rollouts=2,
                        mcts_samples=2, mcts_runs=1)
    _, problems, _ = load_benchmark("miniworld", config)
    with make_sandbox(SandboxConfig(preload=("math",), workers=1)) as sandbox:
        out = evaluate(TransformersGenerator(tiny_policy, device="cpu"), FixedScorer("apples"), problems, config,
                       sandbox).rows
    assert [r["prediction"] for r in out["mcts_majority"]] == [r["prediction"] for r in out["mcts"]]
    assert [r["score"] for r in out["mcts_majority"]] == [1.0 if r["prediction"] else 0.0 for r in out["mcts"]]


class _RecordingGenerator:
    """The real tiny policy, recording the sampling temperature of every generate call."""

    def __init__(self, path):
        self.inner, self.temperatures = TransformersGenerator(path, device="cpu"), set()

    def generate(self, prompts, sampling):
        self.temperatures.add(sampling.temperature)
        return self.inner.generate(prompts, sampling)


def test_mcts_samples_at_the_configured_temperature(tiny_policy):
    config = EvalConfig(methods=("mcts",), miniworld_problems=2, max_tokens=32, mcts_rollouts=1, mcts_samples=2,
                        mcts_temperature=0.4)
    _, problems, _ = load_benchmark("miniworld", config)
    generator = _RecordingGenerator(tiny_policy)
    with make_sandbox(SandboxConfig(preload=("math",), workers=1)) as sandbox:
        evaluate(generator, FixedScorer("apples"), problems, config, sandbox)
    assert generator.temperatures == {0.4}


@needs_shared
def test_every_method_on_the_mini_world_and_a_real_benchmark(tiny_policy):
    """One row per problem and method, predictions as extracted, on mini-world and GSM8K problems."""
    config = EvalConfig(methods=("greedy", "best_of_n", "majority", "mcts", "mcts_majority"), limit=3, n=2,
                        max_tokens=48, miniworld_problems=3, mcts_rollouts=2, mcts_samples=2, mcts_runs=2)
    generator = TransformersGenerator(tiny_policy, device="cpu")
    scorer = FixedScorer("apples")
    with make_sandbox(SandboxConfig(preload=("math",), workers=1)) as sandbox:
        for spec, expected_name in (("miniworld", "miniworld"), (str(GSM8K), "gsm8k_test")):
            name, problems, rejected = load_benchmark(spec, config)
            assert name == expected_name and len(problems) == 3 and rejected == []
            result = evaluate(generator, scorer, problems, config, sandbox)
            out = result.rows
            assert set(result.figures["best_of_n"]) == {"ppm_sample_pairs", "ppm_sample_pair_problems",
                                                        "ppm_sample_pair_accuracy"}
            assert set(out) == {"greedy", "best_of_n", "majority", "mcts", "mcts_majority"}
            votes = [r["score"] for r in out["mcts_majority"]]
            assert all(v in (0.0, 0.5, 1.0) for v in votes)
            for rows in out.values():
                assert [r["problem_id"] for r in rows] == [p.problem_id for p in problems]
                assert all(isinstance(r["correct"], bool) for r in rows)


@needs_shared
def test_rstar_eval_writes_the_evaluations_table(tiny_policy, tmp_path):
    env = {**os.environ, "RSTAR_STORE": str(tmp_path / "store")}
    cmd = [sys.executable, "-m", "rstar_pipeline.cli", "eval", "--model", tiny_policy, "--benchmark", "miniworld",
           str(GSM8K), "--method", "greedy", "majority", "--limit", "2", "--n", "2", "--max-tokens", "32"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| round | method | gsm8k_test | miniworld |" in out.stdout
    rows = query(Warehouse(tmp_path / "store"), "SELECT benchmark, method, count(*) AS n FROM evaluations "
                                               "GROUP BY ALL ORDER BY ALL").to_pylist()
    assert rows == [{"benchmark": b, "method": m, "n": 2} for b in ("gsm8k_test", "miniworld")
                    for m in ("greedy", "majority")]


def test_rstar_eval_on_a_hugging_face_dataset_reports_the_rows_it_leaves_out(tiny_policy, tmp_path):
    """A dataset folder in the hub's layout, loaded by `datasets`: the row with an empty reference is
    left out and named on stderr, the others are evaluated. A hub name with no network is a clear error."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "bench" / "data").mkdir(parents=True)
    pq.write_table(pa.table({"problem": ["What is 2+2?", "What is 3+3?", "What is 5+5?"], "answer": ["4", "", "10"]}),
                   tmp_path / "bench" / "data" / "test-00000-of-00001.parquet")
    env = {**os.environ, "RSTAR_STORE": str(tmp_path / "store"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "rstar_pipeline.cli", "eval", "--model", tiny_policy, "--max-tokens", "32"]
    out = subprocess.run(cmd + ["--benchmark", f"hf:{tmp_path / 'bench'}@test"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "left out: bench row 2: missing answer" in out.stderr and "| round | method | bench |" in out.stdout
    assert query(Warehouse(tmp_path / "store"), "SELECT count(*) AS n FROM evaluations").to_pylist() == [{"n": 2}]
    out = subprocess.run(cmd + ["--benchmark", "hf:HuggingFaceH4/MATH-500"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 2
    assert "rstar: cannot load Hugging Face dataset 'HuggingFaceH4/MATH-500', split 'test'" in out.stderr
