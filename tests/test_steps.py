"""The code-augmented step format: parsing, program assembly, prompts and their inverse."""

import json

import pytest

from rstar_pipeline.steps import (ANSWER_END, CODE_END, STEP_END, PromptTemplate, StepKind, StepParseError,
                                  answer_matches_output, load_template, output_block, parse_step, program, step_code)


def test_parse_intermediate_code_step():
    """A step that stopped at <end_of_step> is a code step; the tag is re-attached; code has no tags."""
    step = parse_step("<code>\n# Step 1: start\nx = 3\n", STEP_END)
    assert step.kind is StepKind.CODE
    assert step.text == "<code>\n# Step 1: start\nx = 3\n<end_of_step>"
    assert step.code == "\n# Step 1: start\nx = 3\n"


def test_parse_last_code_step():
    """A step that stopped at <end_of_code> is the last code step."""
    step = parse_step("\n\n# Now print the final answer\nprint(x)\n", CODE_END)
    assert step.kind is StepKind.CODE_END and step.code.strip().endswith("print(x)")


def test_parse_answer_step_with_nested_braces():
    """An answer step yields the content of its last \\boxed{}, nested braces included."""
    step = parse_step("\n<answer>So x is \\boxed{\\frac{1}{2}}.\n", ANSWER_END)
    assert step.kind is StepKind.ANSWER and step.answer == "\\frac{1}{2}"
    assert step.text.endswith(ANSWER_END)


def test_answer_ended_by_eos_is_still_an_answer():
    """A boxed answer that ended with the end-of-sequence token (no stop string) is accepted."""
    step = parse_step("\n<answer>\\boxed{7}", None)
    assert step.answer == "7" and step.text.endswith(ANSWER_END)


@pytest.mark.parametrize("text, stop, message", [
    ("", None, "empty step"),
    ("", STEP_END, "no code"),
    ("   \n", None, "empty step"),
    ("x = 1\n", None, "no closing tag"),
    ("\n<answer>no box here\n", ANSWER_END, "without \\\\boxed"),
    ("print(1)\n<output>1", "<end_of_output>", "unexpected stop"),
    ("print(1)\n<output>1<end_of_output>", CODE_END, "own <output>"),
    ("# only a comment?\n", STEP_END, None),
    ("<code>\n", STEP_END, "no code"),
])
def test_unparsable_steps_fail_clearly(text, stop, message):
    """Text that is not a step raises StepParseError saying what is wrong."""
    if message is None:
        assert parse_step(text, stop).kind is StepKind.CODE  # a comment-only step is valid Python
        return
    with pytest.raises(StepParseError, match=message):
        parse_step(text, stop)


def test_program_joins_ancestor_code_in_order():
    """A node's program is its ancestors' code followed by its own."""
    codes = [step_code("<code>\n# a\nx = 1\n<end_of_step>"), step_code("\n\n# b\ny = x + 1\n<end_of_step>"),
             step_code("\n\n# c\nprint(y)\n<end_of_code>")]
    assert program(codes) == "# a\nx = 1\n# b\ny = x + 1\n# c\nprint(y)\n"


def test_output_block_strips_trailing_newline():
    """The output block shown after <end_of_code> holds the stripped stdout."""
    assert output_block("42\n") == "\n<output>42<end_of_output>"


@pytest.mark.parametrize("name", ["sft", "bootstrap"])
def test_prompt_round_trip(name):
    """split() inverts build(): the question and partial solution come back unchanged."""
    tpl = load_template(name)
    q, partial = "Mia has 3 apples. How many apples does Mia have now?", "<code>\n# Step 1\nx = 3\n<end_of_step>"
    assert tpl.split(tpl.build(q, partial)) == (q, partial)
    assert tpl.split(tpl.build(q)) == (q, "")


def test_sft_prompt_is_the_fine_tuned_template():
    """The fine-tuned style: user/assistant tags, a single newline before <|assistant|>."""
    prompt = load_template("sft").build("Q?", "<code>")
    assert prompt == "<|user|>:\nQ?\n<|assistant|>: Let's think step by step and solve the problem with code.<code>"


def test_bootstrap_prompt_has_instructions_and_examples():
    """The bootstrap style: instructions, 'The following are 2 demonstration examples.', examples, question."""
    tpl = load_template("bootstrap")
    prompt = tpl.build("Q?")
    assert "The following are 2 demonstration examples." in prompt
    assert all(ex in prompt for ex in tpl.examples) and prompt.endswith("Question: Q?\n")
    for example in tpl.examples:  # the examples follow the step format they teach
        assert "<end_of_step>" in example and "<end_of_code>" in example and "\\boxed{" in example


def test_split_rejects_foreign_prompt():
    """A prompt built from another template is not silently mis-split."""
    with pytest.raises(ValueError, match="sft"):
        load_template("sft").split("Question: what?\n")


def test_load_template_errors(tmp_path):
    """Missing files and templates without a question slot fail with the path named."""
    with pytest.raises(FileNotFoundError, match="nope"):
        load_template(str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"instructions": "", "suffix": "no slot"}))
    with pytest.raises(ValueError, match="bad.json"):
        load_template(str(bad))
    assert isinstance(load_template("sft"), PromptTemplate)


def test_answer_matches_output_compares_the_last_output_line_by_value():
    assert answer_matches_output("x = 3\n<output>51.0<end_of_output>\n<answer>\\boxed{51}", "51")
    assert not answer_matches_output("<output>218.0<end_of_output>\n<answer>\\boxed{312.0}", "312.0")
    assert answer_matches_output("<output>a\n7<end_of_output>", "7")  # the last line is the answer printed
    assert answer_matches_output("# no program ran", "7")  # nothing to contradict
    assert not answer_matches_output("<output>Traceback ... NameError<end_of_output>", "7")
    assert not answer_matches_output("<output>7<end_of_output>", None)
