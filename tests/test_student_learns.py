"""The mini-world student learns to copy numbers: a short fine-tune of the pretrained student on a
small fixed set of teacher solutions lifts its teacher-forced accuracy on the number tokens (the
start value, the operands in comments and code, the answer copied from <output>) far above the base
model's. This is the failure issue 11 found (every pass@1 figure was noise because numbers were
copied wrongly), kept as a fast regression test; the full learning curve is bench/student.py."""

import pytest

from rstar_pipeline.miniworld.probes import problems, teacher_rows, token_accuracy
from rstar_pipeline.miniworld.student import StudentConfig, build_student
from rstar_pipeline.sandbox import SandboxConfig
from rstar_pipeline.training.sft import PolicyTrainingConfig, train_policy

SANDBOX = SandboxConfig(preload=("math", "fractions"))


@pytest.fixture(scope="module")
def learnt(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("learns")
    build_student(root / "base", StudentConfig(corpus_problems=500, hidden_size=64, layers=2, heads=2, kv_heads=1,
                                               intermediate_size=192, pretrain_steps=PRETRAIN_STEPS))
    rows = teacher_rows(problems(ROWS, "learns:train", MAX_LEVEL), 0, SANDBOX)
    probe = teacher_rows(problems(40, "learns:probe", MAX_LEVEL), 1, SANDBOX)
    train_policy(str(root / "base"), rows, root / "policy",
                 PolicyTrainingConfig(max_steps=SFT_STEPS, batch_size=16, gradient_accumulation=1, warmup_steps=20,
                                      eval_fraction=0.0))
    tokenizer = AutoTokenizer.from_pretrained(root / "base")
    before = token_accuracy(AutoModelForCausalLM.from_pretrained(root / "base"), tokenizer, probe)
    after = token_accuracy(AutoModelForCausalLM.from_pretrained(root / "policy"), tokenizer, probe)
    return before, after


PRETRAIN_STEPS, ROWS, MAX_LEVEL, SFT_STEPS = 300, 400, 3, 300


def test_short_training_lifts_number_token_accuracy(learnt):
    """A small student (hidden 64, 2 layers: the test runs in a minute on one thread), measured at seed 0:
    before, answer 0.04, code 0.01, comment 0.01; after 300 pretraining and 300 SFT steps, answer 0.34,
    code 0.99, comment 0.30. With the pretraining's reading documents on world questions (the default)
    the operands form first and the copy from <output> into \\boxed{} follows; with one-sentence lists it
    was the other way round (200 SFT steps: answer 0.51, code 0.17, comment 0.17). bench/student.py has
    the demo's 0.9M student and the full curve."""
    before, after = learnt
    print("before", before, "\nafter ", after)
    for kind, lift in LIFTS.items():
        assert after[kind] >= before[kind] + lift, (kind, before, after)


LIFTS = {"answer": 0.2, "code": 0.6, "comment": 0.2}
