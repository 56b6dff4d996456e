"""Counterfactual answer rows (training/augment.py): only the last output and the boxed answer change, to one
new value of 2-4 digits; rows whose answer contradicts their output are never drawn."""

import pytest

from rstar_pipeline.training.augment import SUFFIX, counterfactual_rows
from rstar_pipeline.training.sft import PolicyTrainingConfig

STEPS = "<code>\n# Step 1: Ann has 12 pens\npens = 12\n<end_of_step>\n# Step 2: she buys 7\npens = pens + 7\n" \
        "<end_of_step>\nprint(pens)\n<end_of_code>\n"


def row(i: int, output: str, boxed: str) -> dict:
    return {"problem_id": f"p{i}", "prompt": f"question {i}", "leaf_node_id": i,
            "completion": f"{STEPS}<output>{output}<end_of_output>\n<answer>Ann has \\boxed{{{boxed}}} pens now.\n"
                          "<end_of_answer>"}


def test_counterfactual_rows_change_only_the_last_output_and_the_answer_to_one_new_value():
    rows = [row(i, str(19 + i), str(19 + i)) for i in range(40)]
    copies = counterfactual_rows(rows, 0.25, seed=3)
    assert len(copies) == 10 and copies == counterfactual_rows(rows, 0.25, seed=3)  # seeded
    by_id = {r["problem_id"]: r for r in rows}
    lengths = set()
    for c in copies:
        source = by_id[c["problem_id"].removesuffix(SUFFIX)]
        assert {k: v for k, v in c.items() if k not in ("problem_id", "completion")} == \
            {k: v for k, v in source.items() if k not in ("problem_id", "completion")}
        assert c["completion"].startswith(STEPS)
        value = c["completion"].split("<output>")[1].split("<end_of_output>")[0]
        answer = f"<end_of_output>\n<answer>Ann has \\boxed{{{value}}} pens now.\n<end_of_answer>"
        assert c["completion"].endswith(answer)
        lengths.add(len(value))
    assert lengths <= {2, 3, 4} and 3 in lengths
    assert len(counterfactual_rows(rows, 1.0, seed=0)) == 40  # at most one per row


def test_rows_whose_answer_contradicts_their_output_are_not_drawn():
    rows = [row(0, "19", "91"), row(1, "SyntaxError: invalid syntax", "19"), row(2, "19", "19")]
    assert [c["problem_id"] for c in counterfactual_rows(rows, 1.0, seed=0)] == ["p2" + SUFFIX]
    assert counterfactual_rows(rows, 0.0, seed=0) == []


def test_answer_copy_share_is_validated():
    with pytest.raises(ValueError, match="answer_copy_share must be in"):
        PolicyTrainingConfig(answer_copy_share=1.5)
