"""Session-wide test fixtures: a tiny student model and a tiny policy fine-tuned from it, built once
per test session into a temporary directory (about 5 s and 10 s on a CPU).

`tiny_student` is the mini world's random-weight student (`build_student`, small tokenizer corpus).
`tiny_policy` is that student fine-tuned for 40 steps on one-step solutions in the step format
("<code>\\n# Step 1: start\\napples = {i}\\n<end_of_step>" after the SFT prompt), enough for greedy
decoding to write a code step closed by <end_of_step> (tests/test_llm_backends.py checks that it
does). Neither knows any mathematics: they exercise backends, not the search's quality.
"""

import os

# One intra-op thread unless the caller says otherwise. The tiny models gain nothing from more, and
# OpenMP threads spin-waiting on a core another process holds made generation ~20x and training ~15x
# slower on a 2-CPU machine. Set before torch is imported (it reads this once).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

from rstar_pipeline.steps import load_template  # noqa: E402

POLICY_STEPS = 40


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory) -> str:
    from rstar_pipeline.miniworld.student import StudentConfig, build_student

    path = tmp_path_factory.mktemp("tiny_student")
    build_student(path, StudentConfig(corpus_problems=300))
    return str(path)


def step_rows(count: int = 64) -> list[dict]:
    """SFT rows whose completion is one code step: what the tiny policy learns to write."""
    sft = load_template("sft")
    return [{"problem_id": f"apples-{i}",
             "prompt": sft.build(f"Mia has {i} apples. How many apples does Mia have now?"),
             "completion": f"<code>\n# Step 1: start\napples = {i}\n<end_of_step>"} for i in range(count)]


@pytest.fixture(scope="session")
def tiny_policy(tiny_student, tmp_path_factory) -> str:
    from rstar_pipeline.training.sft import PolicyTrainingConfig, train_policy

    path = tmp_path_factory.mktemp("tiny_policy")
    train_policy(tiny_student, step_rows(), path,
                 PolicyTrainingConfig(max_steps=POLICY_STEPS, batch_size=16, gradient_accumulation=1,
                                      warmup_steps=4, eval_fraction=0.0))
    return str(path)
