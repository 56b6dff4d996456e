"""The mini world's student: a tiny Llama-shaped transformer with a byte-level BPE tokenizer trained
locally on mini-world text, the step tags as special tokens. No download: it is the base model of
rounds 2-4 and of the PPM on the embedded default, where a real run uses e.g. Qwen2.5-Math-7B.

The tokenizer is GPT-2-style byte-level BPE: whole numbers stay whole pre-tokens, so " 57" is usually
one token and copying a number from the question into the code is copying one token. The model is
saved as `llama` with the tokenizer class `TokenizersBackend`, which transformers loads exactly as
trained (for `qwen2` checkpoints it substitutes its own Qwen2 tokenizer, which splits digits).

A real base model arrives pretrained. `pretrain_steps` gives the student the same footing: a short
language-model run on the world's text (questions, never their solutions), on generic Python
snippets with their interpreter output and on code that writes down the numbers of a sentence
(`miniworld/pretrain.py`); 0 keeps the weights random.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rstar_pipeline.llm.base import SamplingConfig
from rstar_pipeline.miniworld.pretrain import READING
from rstar_pipeline.miniworld.problems import generate
from rstar_pipeline.miniworld.teacher import BootstrapTeacher, TeacherConfig
from rstar_pipeline.steps import SEARCH_STOP, SPECIAL_TOKENS, load_template

PAD, EOS = "<|pad|>", "<|endoftext|>"


@dataclass(frozen=True)
class StudentConfig:
    vocab_size: int = field(default=1200, metadata={"help": "BPE vocabulary size, special tokens included"})
    hidden_size: int = field(default=128, metadata={"help": "model width"})
    layers: int = field(default=4, metadata={"help": "transformer layers"})
    heads: int = field(default=4, metadata={"help": "attention heads"})
    kv_heads: int = field(default=2, metadata={"help": "key/value heads (grouped-query attention)"})
    intermediate_size: int = field(default=384, metadata={"help": "MLP width"})
    max_positions: int = field(default=1024, metadata={"help": "longest sequence, tokens"})
    corpus_problems: int = field(default=2000, metadata={"help": "mini-world problems whose text trains the tokenizer"})
    digit_tokens: bool = field(default=False, metadata={
        "help": "split numbers into single digits (as Qwen2 and Llama 3 do) instead of keeping whole numbers"})
    pretrain_steps: int = field(default=0, metadata={
        "help": "language-model pretraining steps on the world's questions and Python snippets with their output "
                "(no solutions); 0 = random weights"})
    pretrain_batch_size: int = field(default=16, metadata={"help": "pretraining sequences per step"})
    pretrain_lr: float = field(default=3e-3, metadata={"help": "pretraining learning rate (constant after warm-up)"})
    pretrain_reading_share: float = field(default=0.3, metadata={
        "help": "share of pretraining documents that read numbers from a sentence into code (no operations); "
                "bench/student.py: the SFT transition comes ~200 steps earlier with 0.3 than with 0"})
    pretrain_reading: str = field(default="questions", metadata={
        "help": "what reading documents read: 'questions' (world questions, each sentence quoted in a comment and "
                "its numbers assigned) or 'lists' (one sentence listing a few quantities). Seed 1's round-1 rows: "
                "held-out greedy 62% with 'questions', 19% with 'lists' (operand accuracy in comments 0.80 vs 0.44)"})
    seed: int = field(default=0, metadata={"help": "tokenizer corpus, weight initialisation and pretraining seed"})

    def __post_init__(self):
        if not 0.0 <= self.pretrain_reading_share <= 1.0:
            raise ValueError(f"student: pretrain_reading_share must be in [0, 1], not {self.pretrain_reading_share}")
        if self.pretrain_reading not in READING:
            raise ValueError(f"student: pretrain_reading must be one of {sorted(READING)}, not {self.pretrain_reading!r}")


def build_student(out_dir: str | Path, config: StudentConfig = StudentConfig()) -> dict:
    """Train the tokenizer, initialise (and pretrain) the model, save both as a Hugging Face folder;
    returns facts."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=_train_tokenizer(_corpus(config), config),
                                        pad_token=PAD, eos_token=EOS, bos_token=EOS, unk_token=None,
                                        additional_special_tokens=list(SPECIAL_TOKENS), padding_side="left",
                                        model_max_length=config.max_positions)
    model_config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers, num_attention_heads=config.heads, num_key_value_heads=config.kv_heads,
        max_position_embeddings=config.max_positions, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_config(model_config)
    pretrained = {}
    if config.pretrain_steps:
        from rstar_pipeline.miniworld.pretrain import pretrain

        pretrained = pretrain(model, tokenizer, config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    facts = {"parameters": sum(p.numel() for p in model.parameters()), "vocab": len(tokenizer), **pretrained,
             **asdict(config)}
    (out / "student.json").write_text(json.dumps(facts, indent=2))
    return facts


def _corpus(config: StudentConfig) -> list[str]:
    """Questions with teacher solutions (greedy and sampled), in the fine-tuned prompt format."""
    sft = load_template("sft")
    teacher = BootstrapTeacher(TeacherConfig(templates=("sft",), seed=config.seed))
    rng = random.Random(config.seed)
    texts = []
    for i, problem in enumerate(generate(config.corpus_problems, f"tokenizer:{config.seed}")):
        partial = ""
        temperature = 0.0 if i % 2 == 0 else 0.8
        for _ in range(12):  # one solution, step by step (outputs faked: the teacher only copies them)
            completion = teacher.generate([sft.build(problem.question, partial)],
                                          SamplingConfig(n=1, temperature=temperature, stop=SEARCH_STOP,
                                                         seed=rng.randrange(1 << 30)))[0][0]
            partial += completion.text + (completion.stop or "")
            if completion.stop == "<end_of_code>":
                partial += f"\n<output>{problem.answer}<end_of_output>"
            if completion.stop in (None, "<end_of_answer>"):
                break
        texts.append(sft.build(problem.question, partial))
    return texts


def _train_tokenizer(texts: list[str], config: StudentConfig):
    """GPT-2-style byte-level BPE: its pre-tokenizer keeps runs of digits together (" 123" is one
    pre-token), so common numbers become single tokens; with `digit_tokens`, digits are split first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level]) \
        if config.digit_tokens else byte_level
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=config.vocab_size, special_tokens=[PAD, EOS, *SPECIAL_TOKENS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer
