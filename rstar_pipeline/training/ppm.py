"""Process preference model (PPM) training: the policy backbone plus a scalar value head read at the
last token of a step prefix, trained with the pairwise Bradley-Terry loss -log sigmoid(r_pos - r_neg),
each pair weighted by its weight 1/(pos*neg) (reference §5).

The model is a `...ForSequenceClassification` with one label, initialised from that round's SFT
policy (its LM head is dropped; the value head starts fresh) or, with `init: previous`, from the
previous round's PPM (value head included), saved as an ordinary Hugging Face
folder. The loss is on raw rewards; every reported score goes through `ppm_readout` (tanh(raw/5)),
the read-out the search uses: held-out metrics are computed by the same scorer the search loads.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rstar_pipeline.training.sft import split_by_problem
from rstar_pipeline.training.tokens import add_step_tokens


@dataclass(frozen=True)
class PPMTrainingConfig:
    """Parameters of one PPM training run (defaults: the mini world's tiny model on a CPU; the paper's
    7B setting is lr 7e-6, 2 epochs, 512 pairs per step)."""

    max_steps: int = field(default=300, metadata={"help": "optimizer steps (0: use epochs)"})
    epochs: float = field(default=2.0, metadata={"help": "passes over the pairs when max_steps is 0"})
    batch_size: int = field(default=16, metadata={"help": "pairs per micro-batch (per device)"})
    gradient_accumulation: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    learning_rate: float = field(default=5e-4, metadata={"help": "peak learning rate"})
    lr_scheduler: str = field(default="cosine", metadata={"help": "transformers scheduler name"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "fraction of steps for warm-up"})
    max_length: int = field(default=512, metadata={"help": "longest prefix + step, tokens (cut at the start)"})
    eval_fraction: float = field(default=0.1, metadata={"help": "share of problems held out for metrics"})
    weighted: bool = field(default=True, metadata={"help": "weight each pair's loss by 1/(pos*neg)"})
    include_previous_rounds: bool = field(default=False, metadata={
        "help": "train on the pairs of every round so far, not only this round's (paper: off)"})
    init: str = field(default="policy", metadata={
        "help": "what round r's PPM starts from: 'policy' (the round's policy with a fresh value head, as the paper "
                "does) or 'previous' (round r-1's PPM, value head included, continued: the mini world's short demo)"})
    bf16: bool = field(default=False, metadata={"help": "bfloat16 training (GPU)"})
    activation_checkpointing: bool = field(default=False, metadata={
        "help": "recompute activations in the backward pass: less memory, ~30% slower (7B models)"})
    seed: int = field(default=0, metadata={"help": "data order and head initialisation seed"})

    def __post_init__(self):
        if self.max_steps < 0 or self.batch_size < 1 or self.learning_rate <= 0 or not 0 <= self.eval_fraction < 1:
            raise ValueError(f"invalid PPM training config: {self}")
        if self.init not in ("policy", "previous"):
            raise ValueError(f"PPM training: init must be 'policy' or 'previous', not {self.init!r}")


def bradley_terry_loss(r_chosen, r_rejected, weight=None):
    """-log sigmoid(r_chosen - r_rejected), averaged with the pairs' weights."""
    import torch.nn.functional as F

    losses = -F.logsigmoid(r_chosen - r_rejected)
    if weight is None:
        return losses.mean()
    return (weight * losses).sum() / weight.sum()


def _trainer_class():
    from transformers import Trainer

    class PPMTrainer(Trainer):
        """One forward over chosen and rejected sequences together; weighted Bradley-Terry loss."""

        weighted = True

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            rewards = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits[:, 0]
            chosen, rejected = rewards.chunk(2)
            loss = bradley_terry_loss(chosen, rejected, inputs["weight"] if self.weighted else None)
            return (loss, {"rewards": rewards}) if return_outputs else loss

    return PPMTrainer


class _PairCollator:
    """Tokenised pairs -> one right-padded batch: all chosen sequences, then all rejected ones."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]):
        import torch

        seqs = [f["chosen_ids"] for f in features] + [f["rejected_ids"] for f in features]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
        return {"input_ids": ids, "attention_mask": mask,
                "weight": torch.tensor([float(f["weight"]) for f in features])}


def _tokenize(tokenizer, rows: list[dict], max_length: int) -> list[dict]:
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"][-max_length:]  # keep the step judged

    return [{"chosen_ids": ids(r["prompt"] + r["chosen"]), "rejected_ids": ids(r["prompt"] + r["rejected"]),
             "weight": r["weight"]} for r in rows]


def train_ppm(policy_model: str, pairs: list[dict], out_dir: str | Path, config: PPMTrainingConfig) -> dict:
    """Train a PPM from `policy_model` (a policy, or a PPM whose value head is kept) on pair rows
    {problem_id, prompt, chosen, rejected, weight}."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

    if not pairs:
        raise ValueError("PPM training: no preference pairs")
    train_rows, eval_rows = split_by_problem(pairs, config.eval_fraction, config.seed)
    tokenizer = AutoTokenizer.from_pretrained(policy_model)
    torch.manual_seed(config.seed)
    model = AutoModelForSequenceClassification.from_pretrained(policy_model, num_labels=1)
    add_step_tokens(tokenizer, model)
    args = TrainingArguments(
        output_dir=str(Path(out_dir) / "_trainer"), max_steps=config.max_steps or -1, num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate, lr_scheduler_type=config.lr_scheduler, warmup_steps=config.warmup_ratio,
        bf16=config.bf16, activation_checkpointing=config.activation_checkpointing,
        logging_steps=max(1, (config.max_steps or 100) // 20), report_to="none", save_strategy="no",
        remove_unused_columns=False, use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0,
        seed=config.seed, disable_tqdm=True)
    trainer_cls = _trainer_class()
    trainer_cls.weighted = config.weighted
    trainer = trainer_cls(model=model, args=args, data_collator=_PairCollator(tokenizer.pad_token_id),
                          train_dataset=Dataset.from_list(_tokenize(tokenizer, train_rows, config.max_length)))
    start = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - start
    trainer.save_model(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    held_out = pair_metrics(str(out_dir), eval_rows, config.max_length) if eval_rows else {}
    return {"train_pairs": len(train_rows), "eval_pairs": len(eval_rows), "steps": trainer.state.global_step,
            "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
            **{f"eval_{k}": v for k, v in held_out.items()}, "train_s": round(train_s, 1), "config": asdict(config)}


def pair_metrics(ppm_dir: str, pairs: list[dict], max_length: int = 512) -> dict:
    """Loss, accuracy (score(chosen) > score(rejected)) and mean score margin on `pairs`, through the
    scorer the search loads (so the read-out is the search's)."""
    import torch

    from rstar_pipeline.llm.base import ppm_readout
    from rstar_pipeline.llm.hf import TransformersScorer

    scorer = TransformersScorer(ppm_dir, device="cpu" if not torch.cuda.is_available() else "auto",
                                max_tokens=max_length)
    raw_c = scorer.raw([p["prompt"] + p["chosen"] for p in pairs])
    raw_r = scorer.raw([p["prompt"] + p["rejected"] for p in pairs])
    score_c, score_r = ppm_readout(raw_c), ppm_readout(raw_r)
    weight = torch.tensor([float(p["weight"]) for p in pairs])
    right = score_c > score_r
    by_kind = {}  # step pairs carry Monte-Carlo label noise that final pairs do not: report them apart
    for kind in sorted({p["kind"] for p in pairs if p.get("kind")}):
        mine = torch.tensor([p.get("kind") == kind for p in pairs])
        by_kind[f"accuracy_{kind}"] = float(right[mine].float().mean())
    return {"loss": float(bradley_terry_loss(raw_c, raw_r, weight)), "accuracy": float(right.float().mean()),
            **by_kind, "margin": float((score_c - score_r).mean())}
