"""Why the mini-world student learns, or does not: probes and variants, on the product's own code.

Every run builds the student (`build_student`), makes SFT rows, fine-tunes with `train_policy` (TRL)
and measures, every `--curve-every` steps and at the end:

  pass@1     held-out greedy pass@1 (`solve_greedy`: code, real sandbox execution, answer), by level
  tokens     teacher-forced accuracy on held-out solutions, by kind of token: `start` (the first value,
             copied from the question), `comment` and `code` (an operation's numbers in the step's
             comment and code), `answer` (the number in \\boxed{}, a copy of the <output> three tokens
             before it), `output` (the program's output: arithmetic the model is not asked to do) and
             `text` (everything else)

Before training it checks the plumbing once: on a real round-1 store (problems, teacher search,
trajectories) every SFT prompt is byte for byte the prompt `solve_greedy` builds at evaluation time,
and the tokenised rows put the loss on exactly the completion (and EOS), nothing of the prompt.

Rows are the solutions a mistake-free teacher writes when sampled (temperature 0.7: varied comments
and code, as search data has), executed in the sandbox, kept when correct: round 1's SFT data without
the cost of search. Variants change one thing against the default recipe (see VARIANTS); each prints
a row of the variant table and its learning curve. No thresholds; it prints figures.

    .venv/bin/python bench/student.py                               # the default recipe
    .venv/bin/python bench/student.py --variant no_pretrain --variant group_by_length
    .venv/bin/python bench/student.py --variant default --steps 1500 --curve-every 100
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import closing
from dataclasses import replace

from rstar_pipeline.miniworld.probes import KINDS, problems, teacher_rows, token_accuracy
from rstar_pipeline.miniworld.student import StudentConfig, build_student
from rstar_pipeline.miniworld.teacher import BootstrapTeacher, TeacherConfig
from rstar_pipeline.problemsets import Problem
from rstar_pipeline.sandbox import SandboxConfig, make_sandbox
from rstar_pipeline.search.greedy import solve_greedy
from rstar_pipeline.steps import load_template
from rstar_pipeline.training.sft import PolicyTrainingConfig, tokenize_row, train_policy

SFT = load_template("sft")
SANDBOX = SandboxConfig(preload=("math", "fractions"))
# One change each against the default recipe (the mini presets' student and round-1 training).
VARIANTS = {
    "default": {},
    "no_pretrain": {"student": {"pretrain_steps": 0}},
    "no_reading": {"student": {"pretrain_reading_share": 0.0}},
    "list_reading": {"student": {"pretrain_reading": "lists"}},
    "digits": {"student": {"digit_tokens": True}},
    "random_batches": {"training": {"sampling": "random", "batch_size": 32, "gradient_accumulation": 1}},
    "group_by_length": {"training": {"sampling": "group_by_length", "batch_size": 32, "gradient_accumulation": 1}},
    "batch16": {"training": {"gradient_accumulation": 2}},
    "mask_output": {"training": {"mask_tool_output": True}},
    "cosine": {"training": {"lr_scheduler": "cosine"}},
    "lr_1e-3": {"training": {"learning_rate": 1e-3}},
    "lr_1e-2": {"training": {"learning_rate": 1e-2}},
    "rows_1000": {"rows": 1000},
    "rows_6000": {"rows": 6000},
}


# ---------------------------------------------------------------- plumbing checks


def check_prompts_and_labels(student: str) -> dict:
    """A real round-1 store: SFT prompts == evaluation prompts; labels == completion + EOS exactly."""
    from transformers import AutoTokenizer

    from rstar_pipeline import stages
    from rstar_pipeline.checkpoints import sft_rows
    from rstar_pipeline.llm.config import GeneratorConfig, ScorerConfig
    from rstar_pipeline.problemsets import ProblemsConfig
    from rstar_pipeline.search.config import SearchConfig
    from rstar_pipeline.search.extract import TrajectoryConfig
    from rstar_pipeline.warehouse.store import Warehouse

    tokenizer = AutoTokenizer.from_pretrained(student)
    with tempfile.TemporaryDirectory() as tmp:
        store = Warehouse(tmp)
        stages.write_problem_shards(store, ProblemsConfig(count=24, seed=99), ["shard_000"], 1)
        spec = stages.prepare_search(store, 1, SearchConfig(rollouts=4), GeneratorConfig(), ScorerConfig(),
                                     TeacherConfig(), SANDBOX)
        with closing(make_sandbox(SANDBOX)) as sandbox:
            stages.search_shard(store, spec, "shard_000", BootstrapTeacher(), sandbox)
        stages.extract_trajectories(store, 1, "shard_000", TrajectoryConfig())
        rows = sft_rows(store, 1)
        questions = {p.problem_id: p.question for p in stages.read_problems(store, "shard_000")}
    same_prompt = sum(r["prompt"] == SFT.build(questions[r["problem_id"]]) for r in rows)
    exact_labels = prefix = 0
    for r in rows:
        row = tokenize_row(tokenizer, r["prompt"], r["completion"], mask_tool_output=False)
        labelled = [t for t, m in zip(row["input_ids"], row["completion_mask"]) if m]
        exact_labels += tokenizer.decode(labelled) == r["completion"] + tokenizer.eos_token
        whole = tokenizer(r["prompt"] + r["completion"], add_special_tokens=False)["input_ids"]
        prefix += whole == row["input_ids"][:-1]
    return {"sft_rows": len(rows), "prompt_equals_eval_prompt": same_prompt, "labels_are_completion": exact_labels,
            "tokenised_alone_equals_whole": prefix}


# ---------------------------------------------------------------- probes


def pass_at_1(model, tokenizer, heldout: list[Problem], sandbox) -> dict:
    from rstar_pipeline.llm.hf import TransformersGenerator

    generator = TransformersGenerator.from_model(model, tokenizer, batch_size=64)
    results = solve_greedy(heldout, generator, sandbox, max_tokens=400)
    by_level = defaultdict(list)
    for p, r in zip(heldout, results):
        by_level[p.level].append(r.is_correct)
    return {"pass1": round(sum(r.is_correct for r in results) / len(results), 3),
            "by_level": {lv: round(sum(v) / len(v), 2) for lv, v in sorted(by_level.items())}}


def curve_callback(tokenizer, heldout, probe_rows, every: int, sandbox, curve: list):
    from transformers import TrainerCallback

    class Curve(TrainerCallback):
        """Every `every` steps: held-out pass@1 and token accuracy (their time is not training time)."""

        eval_s = 0.0

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % every:
                return
            start = time.perf_counter()
            point = {"step": state.global_step, **pass_at_1(model, tokenizer, heldout, sandbox),
                     "tokens": token_accuracy(model, tokenizer, probe_rows)}
            losses = [h["loss"] for h in state.log_history if "loss" in h]
            point["loss"] = round(losses[-1], 3) if losses else None
            model.train()
            Curve.eval_s += time.perf_counter() - start
            point["train_s"] = round(time.perf_counter() - self.start - Curve.eval_s, 1)
            curve.append(point)
            print(f"  step {point['step']:5d}  train {point['train_s']:6.1f} s  loss {point['loss']}  "
                  f"pass@1 {point['pass1']:.3f} {point['by_level']}  tokens {point['tokens']}", flush=True)

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

    return Curve()


# ---------------------------------------------------------------- one run


def run(name: str, args) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    change = VARIANTS[name]
    student_config = replace(StudentConfig(pretrain_steps=args.pretrain_steps, seed=args.seed),
                             **change.get("student", {}))
    training = replace(PolicyTrainingConfig(max_steps=args.steps, seed=args.seed, eval_fraction=0.0),
                       **change.get("training", {}))
    count = change.get("rows", args.rows)
    print(f"\n== {name}: {json.dumps(change)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, closing(make_sandbox(SANDBOX)) as sandbox:
        t0 = time.perf_counter()
        facts = build_student(f"{tmp}/student", student_config)
        build_s = time.perf_counter() - t0
        if args.check:
            print("  checks:", check_prompts_and_labels(f"{tmp}/student"), flush=True)
        rows = teacher_rows(problems(count, f"bench:train:{args.seed}", args.max_level), args.seed, SANDBOX)
        heldout = problems(args.heldout, f"bench:heldout:{args.seed}", args.max_level)
        probe_rows = teacher_rows(problems(60, f"bench:probe:{args.seed}", args.max_level), args.seed, SANDBOX)
        tokenizer = AutoTokenizer.from_pretrained(f"{tmp}/student")
        curve: list = []
        callback = curve_callback(tokenizer, heldout, probe_rows, args.curve_every, sandbox, curve)
        metrics = train_policy(f"{tmp}/student", rows, f"{tmp}/policy", training, callbacks=[callback])
        model = AutoModelForCausalLM.from_pretrained(f"{tmp}/policy")
        final = {**pass_at_1(model, tokenizer, heldout, sandbox),
                 "tokens": token_accuracy(model, tokenizer, probe_rows)}
        if args.save:
            shutil.copytree(f"{tmp}/policy", f"{args.save}/{name}", dirs_exist_ok=True)
    result = {"variant": name, "rows": len(rows), "steps": metrics["steps"],
              "batch": training.batch_size * training.gradient_accumulation,
              "lr": training.learning_rate, "train_s": metrics["train_s"] - round(callback.eval_s, 1),
              "pretrain_s": facts.get("pretrain_s", 0.0), "build_s": round(build_s, 1), **final, "curve": curve}
    print(f"  final: pass@1 {final['pass1']:.3f} {final['by_level']}  tokens {final['tokens']}  "
          f"train {result['train_s']:.0f} s (+ pretraining {result['pretrain_s']:.0f} s)", flush=True)
    return result


def table(results: list[dict]) -> str:
    head = "| variant | rows | steps x batch, lr | train s (+ pretrain) | pass@1 | by level | " + \
           " | ".join(KINDS) + " |"
    lines = [head, "|" + "---|" * (6 + len(KINDS))]
    for r in results:
        levels = ", ".join(f"{100 * v:.0f}" for v in r["by_level"].values())
        tokens = " | ".join(f"{100 * r['tokens'].get(k, 0):.0f}%" for k in KINDS)
        lines.append(f"| {r['variant']} | {r['rows']} | {r['steps']} x {r['batch']}, {r['lr']:g} | "
                     f"{r['train_s']:.0f} (+{r['pretrain_s']:.0f}) | {100 * r['pass1']:.1f}% | {levels} | {tokens} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="repeatable; default: default")
    parser.add_argument("--steps", type=int, default=PolicyTrainingConfig.max_steps)
    parser.add_argument("--rows", type=int, default=3000, help="distinct training problems")
    parser.add_argument("--pretrain-steps", type=int, default=300, help="the student's pretraining steps")
    parser.add_argument("--max-level", type=int, default=6)
    parser.add_argument("--heldout", type=int, default=200, help="held-out problems for pass@1")
    parser.add_argument("--curve-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-check", dest="check", action="store_false", help="skip the plumbing checks")
    parser.add_argument("--json", help="append each run's result as a JSON line to this file")
    parser.add_argument("--save", help="keep each run's policy in SAVE/<variant>")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    results = []
    for name in args.variant or ["default"]:
        results.append(run(name, args))
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps({**results[-1], "seed": args.seed}) + "\n")
    print("\n" + table(results))


if __name__ == "__main__":
    sys.exit(main())
