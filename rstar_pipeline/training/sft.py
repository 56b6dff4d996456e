"""Policy SFT with TRL's `SFTTrainer`: prompt/completion pairs, loss on the completion only.

Each round fine-tunes the configured base model (as the paper does, not the previous round's policy)
on that round's selected trajectories, and saves an ordinary Hugging Face folder (safetensors,
tokenizer, config) that `AutoModelForCausalLM.from_pretrained` and vLLM load.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rstar_pipeline.training.tokens import add_step_tokens


@dataclass(frozen=True)
class PolicyTrainingConfig:
    """Parameters of one policy fine-tune. Defaults suit the mini world's tiny student on a CPU; the
    paper's 7B setting is lr 7e-6, 2 epochs, global batch 128 (see assets/configs)."""

    max_steps: int = field(default=600, metadata={"help": "optimizer steps (0: use epochs)"})
    epochs: float = field(default=2.0, metadata={"help": "passes over the data when max_steps is 0"})
    batch_size: int = field(default=32, metadata={"help": "examples per step (per device)"})
    gradient_accumulation: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    learning_rate: float = field(default=2e-3, metadata={"help": "peak learning rate"})
    lr_scheduler: str = field(default="cosine", metadata={"help": "transformers scheduler name"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "fraction of steps for warm-up"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_length: int = field(default=512, metadata={"help": "longest prompt + completion, tokens"})
    eval_fraction: float = field(default=0.05, metadata={"help": "share of problems held out for eval loss"})
    include_previous_rounds: bool = field(default=False, metadata={
        "help": "train on the selected trajectories of every round so far, not only this round's (paper: off)"})
    bf16: bool = field(default=False, metadata={"help": "bfloat16 training (GPU)"})
    activation_checkpointing: bool = field(default=False, metadata={
        "help": "recompute activations in the backward pass: less memory, ~30% slower (7B models)"})
    seed: int = field(default=0, metadata={"help": "data order and initialisation seed"})

    def __post_init__(self):
        if self.max_steps < 0 or self.batch_size < 1 or self.learning_rate <= 0 or not 0 <= self.eval_fraction < 1:
            raise ValueError(f"invalid policy training config: {self}")


def split_by_problem(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Held-out rows are whole problems, so that no problem is on both sides."""
    problems = sorted({r["problem_id"] for r in rows})
    random.Random(seed).shuffle(problems)
    held = set(problems[:math.floor(len(problems) * fraction)])
    return [r for r in rows if r["problem_id"] not in held], [r for r in rows if r["problem_id"] in held]


def train_policy(base_model: str, rows: list[dict], out_dir: str | Path, config: PolicyTrainingConfig) -> dict:
    """Fine-tune `base_model` on rows of {problem_id, prompt, completion}; save to `out_dir`; metrics."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if not rows:
        raise ValueError("policy training: no SFT rows (no correct, error-free trajectory was selected)")
    train_rows, eval_rows = split_by_problem(rows, config.eval_fraction, config.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    model = AutoModelForCausalLM.from_pretrained(base_model)
    add_step_tokens(tokenizer, model)
    as_dataset = lambda rs: Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rs])
    args = SFTConfig(
        output_dir=str(Path(out_dir) / "_trainer"), max_steps=config.max_steps or -1,
        num_train_epochs=config.epochs, per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size, gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate, lr_scheduler_type=config.lr_scheduler, warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay, max_length=config.max_length, completion_only_loss=True,
        logging_steps=max(1, (config.max_steps or 100) // 20), report_to="none", save_strategy="no",
        bf16=config.bf16, activation_checkpointing=config.activation_checkpointing, use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0, seed=config.seed, disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=as_dataset(train_rows),
                         eval_dataset=as_dataset(eval_rows) if eval_rows else None, processing_class=tokenizer)
    start = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - start
    eval_loss = trainer.evaluate()["eval_loss"] if eval_rows else None
    trainer.save_model(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"train_rows": len(train_rows), "eval_rows": len(eval_rows), "steps": trainer.state.global_step,
            "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
            "eval_loss": eval_loss, "train_s": round(train_s, 1), "config": asdict(config)}
