"""Policy SFT and PPM training on a tiny student: losses fall, the PPM learns to rank held-out pairs,
checkpoints are ordinary Hugging Face folders, and the PPM read-out is the search's.

Data: mini-world solutions written step by step by the bootstrap teacher. Its greedy steps are the
right ones; the same teacher forced to make a mistake (the wrong operator: "subtract" where the
question says "buys") writes the rejected step of a pair, as MCTS siblings with low Q would be.
"""

import math

import pytest

from rstar_pipeline.llm.base import SamplingConfig, ppm_readout
from rstar_pipeline.llm.config import ScorerConfig, make_scorer
from rstar_pipeline.miniworld.problems import generate
from rstar_pipeline.miniworld.student import StudentConfig, build_student
from rstar_pipeline.miniworld.teacher import MISTAKES, BootstrapTeacher, TeacherConfig
from rstar_pipeline.steps import SEARCH_STOP, SPECIAL_TOKENS, load_template
from rstar_pipeline.training.ppm import PPMTrainingConfig, bradley_terry_loss, train_ppm
from rstar_pipeline.training.sft import PolicyTrainingConfig, train_policy

SFT = load_template("sft")
TINY = StudentConfig(corpus_problems=300, vocab_size=500, hidden_size=64, layers=2, heads=2, kv_heads=1,
                     intermediate_size=128)
RIGHT = BootstrapTeacher(TeacherConfig(confusions=(), span=0))  # greedy and never misreading: always right
WRONG_OPERATOR = BootstrapTeacher(TeacherConfig(mistake_rate=1.0, confusions=(), span=0, mistake_weights=tuple(
    float(m == "wrong_operator") for m in MISTAKES)))


def next_step(teacher: BootstrapTeacher, prompt: str, seed: int = 0) -> str:
    sampling = SamplingConfig(temperature=0.0 if teacher is RIGHT else 1.0, max_tokens=200, stop=SEARCH_STOP,
                              seed=seed)
    c = teacher.generate([prompt], sampling)[0][0]
    return c.text + (c.stop or "")


def solutions(count: int, seed: str) -> list[dict]:
    """SFT rows: a question and the teacher's whole step-by-step solution (without sandbox outputs)."""
    rows = []
    for i, p in enumerate(generate(count, seed)):
        completion = ""
        for _ in range(len(p.ops) + 2):
            completion += next_step(RIGHT, SFT.build(p.question, completion))
        rows.append({"problem_id": f"{seed}-{i}", "prompt": SFT.build(p.question), "completion": completion})
    return rows


def pairs(count: int, seed: str) -> list[dict]:
    """Pair rows at every operation step: the right step is chosen, the wrong-operator one rejected."""
    rows = []
    for i, p in enumerate(generate(count, seed)):
        partial = next_step(RIGHT, SFT.build(p.question))
        for depth, _ in enumerate(p.ops):
            prompt = SFT.build(p.question, partial)
            chosen, rejected = next_step(RIGHT, prompt), next_step(WRONG_OPERATOR, prompt, seed=depth)
            if chosen != rejected:
                rows.append({"problem_id": f"{seed}-{i}", "kind": "step", "prompt": prompt, "chosen": chosen,
                             "rejected": rejected, "weight": 1 / (1 + depth)})
            partial += chosen
    return rows


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("student")
    build_student(path, TINY)
    return str(path)


@pytest.fixture(scope="module")
def ppm(student, tmp_path_factory):
    path = tmp_path_factory.mktemp("ppm")
    rows = pairs(120, "ppm")
    metrics = train_ppm(student, rows, path, PPMTrainingConfig(max_steps=60, batch_size=16, learning_rate=2e-3,
                                                               eval_fraction=0.25))
    return str(path), rows, metrics


def test_student_tokenizer_is_used_as_trained(student):
    """transformers loads the student's tokenizer as Qwen2's, which re-imposes its own pre-tokenizer: the
    ids it gives are those of the tokenizer build_student trained, step tags included."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    row = solutions(1, "tokenizer")[0]
    text = row["prompt"] + row["completion"] + "\n<output>1234<end_of_output>"
    trained = Tokenizer.from_file(f"{student}/tokenizer.json").encode(text, add_special_tokens=False).ids
    assert AutoTokenizer.from_pretrained(student).encode(text, add_special_tokens=False) == trained


def test_sft_loss_falls_and_saves_a_hugging_face_folder(student, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    metrics = train_policy(student, solutions(48, "sft"), tmp_path,
                           PolicyTrainingConfig(max_steps=30, batch_size=8, gradient_accumulation=1, learning_rate=3e-3,
                                                warmup_steps=5, eval_fraction=0.2))
    assert metrics["steps"] == 30 and metrics["eval_rows"] > 0
    assert metrics["final_loss"] < 0.7 * metrics["first_loss"]
    assert metrics["eval_loss"] < 0.7 * metrics["first_loss"]  # held-out problems too, not only memorised
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= {p.name for p in tmp_path.iterdir()}
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert all(len(tokenizer.encode(t, add_special_tokens=False)) == 1 for t in SPECIAL_TOKENS)
    assert AutoModelForCausalLM.from_pretrained(tmp_path).get_input_embeddings().weight.shape[0] >= len(tokenizer)


def test_ppm_loss_falls_and_ranks_held_out_pairs_above_chance(ppm):
    _, _, metrics = ppm
    assert metrics["first_loss"] == pytest.approx(math.log(2), abs=0.05)  # a fresh head: r_pos ~ r_neg
    assert metrics["final_loss"] < 0.7 * metrics["first_loss"]
    assert metrics["eval_pairs"] >= 60
    # Chance is 0.5; with 60+ held-out pairs, 0.65 is > 2 standard deviations above it.
    assert metrics["eval_accuracy"] > 0.65 and metrics["eval_margin"] > 0
    assert metrics["eval_loss"] < math.log(2)


def test_ppm_read_out_is_the_same_in_training_and_search(ppm):
    """The held-out metrics train_ppm reports are what the scorer the search builds (make_scorer) gives,
    and that scorer's score is tanh(raw / 5) of the head read at the last token."""
    import torch

    path, rows, metrics = ppm
    held_out = [r for r in rows if r["problem_id"] in held_out_problems(rows, metrics)]
    assert len(held_out) == metrics["eval_pairs"]
    scorer = make_scorer(ScorerConfig(device="cpu"), path)
    chosen = scorer.score([r["prompt"] + r["chosen"] for r in held_out])
    rejected = scorer.score([r["prompt"] + r["rejected"] for r in held_out])
    accuracy = sum(c > r for c, r in zip(chosen, rejected)) / len(held_out)
    margin = sum(c - r for c, r in zip(chosen, rejected)) / len(held_out)
    assert accuracy == pytest.approx(metrics["eval_accuracy"]) and margin == pytest.approx(metrics["eval_margin"])
    for kind in {r["kind"] for r in held_out}:  # and apart by pair kind (step pairs carry label noise)
        mine = [c > r for c, r, row in zip(chosen, rejected, held_out) if row["kind"] == kind]
        assert metrics[f"eval_accuracy_{kind}"] == pytest.approx(sum(mine) / len(mine))
    raw = scorer.raw([held_out[0]["prompt"] + held_out[0]["chosen"]])
    assert chosen[0] == pytest.approx(math.tanh(raw[0].item() / 5)) == pytest.approx(float(ppm_readout(raw)[0]))
    weight = torch.tensor([r["weight"] for r in held_out])
    raw_c = scorer.raw([r["prompt"] + r["chosen"] for r in held_out])
    raw_r = scorer.raw([r["prompt"] + r["rejected"] for r in held_out])
    assert float(bradley_terry_loss(raw_c, raw_r, weight)) == pytest.approx(metrics["eval_loss"], rel=1e-4)


def held_out_problems(rows: list[dict], metrics: dict) -> set[str]:
    from rstar_pipeline.training.sft import split_by_problem

    config = metrics["config"]
    return {r["problem_id"] for r in split_by_problem(rows, config["eval_fraction"], config["seed"])[1]}


def test_bradley_terry_loss_weights_pairs():
    import torch

    chosen, rejected = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 2.0])
    losses = [-math.log(1 / (1 + math.exp(-2))), -math.log(1 / (1 + math.exp(2)))]
    assert float(bradley_terry_loss(chosen, rejected)) == pytest.approx(sum(losses) / 2)
    weighted = float(bradley_terry_loss(chosen, rejected, torch.tensor([3.0, 1.0])))
    assert weighted == pytest.approx((3 * losses[0] + losses[1]) / 4)


def test_training_rejects_empty_data(student, tmp_path):
    with pytest.raises(ValueError, match="no SFT rows"):
        train_policy(student, [], tmp_path, PolicyTrainingConfig())
    with pytest.raises(ValueError, match="no preference pairs"):
        train_ppm(student, [], tmp_path, PPMTrainingConfig())


def test_unknown_start_of_a_round_is_a_config_error():
    with pytest.raises(ValueError, match="init must be 'base' or 'previous'"):
        PolicyTrainingConfig(init="policy")
    with pytest.raises(ValueError, match="init must be 'policy' or 'previous'"):
        PPMTrainingConfig(init="base")
