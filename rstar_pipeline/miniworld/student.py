"""The mini world's student: a tiny Qwen2-style transformer with a byte-level BPE tokenizer trained
locally on mini-world text, the step tags as special tokens. No download: it is the base model of
rounds 2-4 and of the PPM on the embedded default, where a real run uses e.g. Qwen2.5-Math-7B.

The weights are random: everything the student knows comes from the pipeline's own SFT data. The
tokenizer corpus is mini-world text (questions and teacher-written solutions of problems drawn from a
separate seed), so that numbers, code and tags tokenise compactly.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rstar_pipeline.llm.base import SamplingConfig
from rstar_pipeline.miniworld.problems import generate
from rstar_pipeline.miniworld.teacher import BootstrapTeacher, TeacherConfig
from rstar_pipeline.steps import SEARCH_STOP, SPECIAL_TOKENS, load_template

PAD, EOS = "<|pad|>", "<|endoftext|>"


@dataclass(frozen=True)
class StudentConfig:
    vocab_size: int = field(default=1500, metadata={"help": "BPE vocabulary size, special tokens included"})
    hidden_size: int = field(default=128, metadata={"help": "model width"})
    layers: int = field(default=4, metadata={"help": "transformer layers"})
    heads: int = field(default=4, metadata={"help": "attention heads"})
    kv_heads: int = field(default=2, metadata={"help": "key/value heads (grouped-query attention)"})
    intermediate_size: int = field(default=384, metadata={"help": "MLP width"})
    max_positions: int = field(default=1024, metadata={"help": "longest sequence, tokens"})
    corpus_problems: int = field(default=2000, metadata={"help": "mini-world problems whose text trains the tokenizer"})
    seed: int = field(default=0, metadata={"help": "tokenizer corpus and weight initialisation seed"})


def build_student(out_dir: str | Path, config: StudentConfig = StudentConfig()) -> dict:
    """Train the tokenizer, initialise the model, save both as a Hugging Face folder; returns facts."""
    import torch
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=_train_tokenizer(_corpus(config), config.vocab_size),
                                        pad_token=PAD, eos_token=EOS, bos_token=EOS, unk_token=None,
                                        additional_special_tokens=list(SPECIAL_TOKENS), padding_side="left",
                                        model_max_length=config.max_positions)
    model_config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers, num_attention_heads=config.heads, num_key_value_heads=config.kv_heads,
        max_position_embeddings=config.max_positions, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_config(model_config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    facts = {"parameters": sum(p.numel() for p in model.parameters()), "vocab": len(tokenizer), **asdict(config)}
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


def _train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE with Qwen2's normalizer and pre-tokenizer (digits one by one). transformers loads any
    qwen2 checkpoint's tokenizer as `Qwen2Tokenizer`, which imposes these on the saved merges; training
    the merges on the same pre-tokens keeps the tokenizer that is used the one that was trained."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS, *SPECIAL_TOKENS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer
