"""Policy SFT with TRL's `SFTTrainer`: prompt/completion pairs, loss on the completion only.

Each round fine-tunes a starting model (the base model, as the paper does, or the previous round's
policy) on selected trajectories and saves an ordinary Hugging Face folder (safetensors, tokenizer,
config) that `AutoModelForCausalLM.from_pretrained` and vLLM load.

Rows are tokenised here, not by TRL: the prompt and the completion separately (the prompt is what the
policy is given at generation time, the completion what it writes), EOS appended, and a completion
mask that, with `mask_tool_output`, also leaves out the sandbox's `<output>...<end_of_output>` blocks:
the interpreter writes those, not the policy, so they are context, not targets. Each optimizer batch
is drawn at random and, with `sampling: rebalance`, split into micro-batches of similar length, which
on a CPU saves the compute that padding every row to the longest of a random batch wastes; batches of
similar length across the whole data (`group_by_length`) save more but made every batch a batch of one
problem size, and the mini student then never learned when a solution ends (bench/student.py).
"""

from __future__ import annotations

import math
import random
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rstar_pipeline.steps import OUTPUT, OUTPUT_END
from rstar_pipeline.training.augment import counterfactual_rows
from rstar_pipeline.training.tokens import add_step_tokens

SAMPLING = {"random": "random", "rebalance": "batch_rebalance", "group_by_length": "group_by_length"}
# An output block as the search writes it after <end_of_code> (steps.output_block): newline, tags, text.
_OUTPUT_BLOCK = re.compile("\n?" + re.escape(OUTPUT) + ".*?" + re.escape(OUTPUT_END), re.S)


@dataclass(frozen=True)
class PolicyTrainingConfig:
    """Parameters of one policy fine-tune. Defaults suit the mini world's tiny student on a CPU; the
    paper's 7B setting is lr 7e-6, 2 epochs, global batch 128 (see assets/configs)."""

    max_steps: int = field(default=600, metadata={"help": "optimizer steps (0: use epochs)"})
    epochs: float = field(default=2.0, metadata={"help": "passes over the data when max_steps is 0"})
    batch_size: int = field(default=8, metadata={"help": "examples per micro-batch (per device)"})
    gradient_accumulation: int = field(default=4, metadata={"help": "micro-batches per optimizer step"})
    learning_rate: float = field(default=3e-3, metadata={"help": "peak learning rate"})
    lr_scheduler: str = field(default="constant_with_warmup", metadata={"help": "transformers scheduler name"})
    warmup_steps: int = field(default=50, metadata={"help": "optimizer steps of linear warm-up"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    adam_beta2: float = field(default=0.95, metadata={"help": "AdamW beta2 (the tiny student: 0.95; transformers: 0.999)"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    max_length: int = field(default=512, metadata={"help": "longest prompt + completion, tokens"})
    sampling: str = field(default="rebalance", metadata={
        "help": "how rows form batches: 'random'; 'rebalance' (random optimizer batches, each split into micro-batches "
                "of similar length: less padding, the same gradient); 'group_by_length' (batches of similar length: "
                "least padding, but each batch then holds problems of one size, which stalled the mini student)"})
    mask_tool_output: bool = field(default=False, metadata={
        "help": "leave the sandbox's <output> blocks out of the loss (the interpreter writes them, not the policy)"})
    answer_copy_share: float = field(default=0.0, metadata={
        "help": "extra rows, as a share of the training rows, whose final output and boxed answer are replaced by a "
                "new 2-4 digit value (training/augment.py): copying long numbers from the output is learnt; "
                "0 = off (the paper)"})
    init: str = field(default="base", metadata={
        "help": "what round r starts from: 'base' (the base model, as the paper does) or 'previous' (round r-1's "
                "policy, continued: the mini world's short demo)"})
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
        if not 0.0 <= self.answer_copy_share <= 1.0:
            raise ValueError(f"policy training: answer_copy_share must be in [0, 1], not {self.answer_copy_share}")
        if self.sampling not in SAMPLING:
            raise ValueError(f"policy training: sampling must be one of {SAMPLING}, not {self.sampling!r}")
        if self.init not in ("base", "previous"):
            raise ValueError(f"policy training: init must be 'base' or 'previous', not {self.init!r}")


def split_by_problem(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Held-out rows are whole problems, so that no problem is on both sides."""
    problems = sorted({r["problem_id"] for r in rows})
    random.Random(seed).shuffle(problems)
    held = set(problems[:math.floor(len(problems) * fraction)])
    return [r for r in rows if r["problem_id"] not in held], [r for r in rows if r["problem_id"] in held]


def tokenize_row(tokenizer, prompt: str, completion: str, mask_tool_output: bool) -> dict:
    """input_ids = prompt + completion + EOS; completion_mask marks the tokens the loss is on."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    enc = tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)
    spans = [m.span() for m in _OUTPUT_BLOCK.finditer(completion)] if mask_tool_output else []
    mask = [0 if any(a <= start < b for a, b in spans) else 1 for start, _ in enc["offset_mapping"]]
    return {"input_ids": prompt_ids + enc["input_ids"] + [tokenizer.eos_token_id],
            "completion_mask": [0] * len(prompt_ids) + mask + [1]}


def _trainer_class():
    from trl import SFTTrainer

    class PolicyTrainer(SFTTrainer):
        """SFTTrainer with the model's own causal-LM loss. TRL's fused LM head (per-token log-probs,
        entropy and accuracy in chunks, for large vocabularies) cost a third of every step of the tiny
        student, whose whole logits are small."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return Trainer.compute_loss(self, model, {**inputs, "use_cache": False}, return_outputs, num_items_in_batch)

    from transformers import Trainer

    return PolicyTrainer


def train_policy(init_model: str, rows: list[dict], out_dir: str | Path, config: PolicyTrainingConfig,
                 callbacks: list | None = None) -> dict:
    """Fine-tune `init_model` on rows of {problem_id, prompt, completion}; save to `out_dir`; metrics.
    `callbacks` are transformers `TrainerCallback`s (e.g. a learning curve in bench/student.py)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig

    if not rows:
        raise ValueError("policy training: no SFT rows (no correct, error-free trajectory was selected)")
    train_rows, eval_rows = split_by_problem(rows, config.eval_fraction, config.seed)
    copies = counterfactual_rows(train_rows, config.answer_copy_share, config.seed)
    tokenizer = AutoTokenizer.from_pretrained(init_model)
    model = AutoModelForCausalLM.from_pretrained(init_model)
    add_step_tokens(tokenizer, model)
    as_dataset = lambda rs: Dataset.from_list(
        [tokenize_row(tokenizer, r["prompt"], r["completion"], config.mask_tool_output) for r in rs])
    args = SFTConfig(
        output_dir=str(Path(out_dir) / "_trainer"), max_steps=config.max_steps or -1,
        num_train_epochs=config.epochs, per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size, gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate, lr_scheduler_type=config.lr_scheduler, warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm, max_length=config.max_length,
        completion_only_loss=True, adam_beta2=config.adam_beta2,
        train_sampling_strategy=SAMPLING[config.sampling],
        logging_steps=max(1, (config.max_steps or 100) // 20), report_to="none", save_strategy="no",
        bf16=config.bf16, activation_checkpointing=config.activation_checkpointing, use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0, seed=config.seed, disable_tqdm=True)
    trainer = _trainer_class()(model=model, args=args, train_dataset=as_dataset(train_rows + copies),
                         eval_dataset=as_dataset(eval_rows) if eval_rows else None, processing_class=tokenizer,
                         callbacks=callbacks)
    start = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - start
    eval_loss = trainer.evaluate()["eval_loss"] if eval_rows else None
    trainer.save_model(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"train_rows": len(train_rows), "answer_copy_rows": len(copies), "eval_rows": len(eval_rows),
            "steps": trainer.state.global_step,
            "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
            "eval_loss": eval_loss, "train_s": round(train_s, 1), "config": asdict(config)}
