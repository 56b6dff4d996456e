"""Evaluation of a policy (and its PPM) on benchmarks, as in the paper: greedy pass@1 of the policy
alone, best-of-N ranked by the PPM, majority vote over N sampled solutions, MCTS with the PPM (no
ground truth: the answer node with the highest Q), and a majority vote over several MCTS runs.

Benchmarks are data: `miniworld` (held-out mini-world problems, split 'test'), any problem file in
the reference's eval format (JSON list of {index, question, answer}), JSON Lines or Parquet, or a
Hugging Face dataset (`hf:NAME[:CONFIG][@SPLIT]`), loaded and validated like training problems; rows
that fail validation (an empty reference) are left out and reported. Results are rows of the
`evaluations` table (one per problem and method), a markdown table shaped like the paper's Table 6
and a PNG chart of accuracy by round. Answers are graded by `grading.is_equivalent`, never executed.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from rstar_pipeline.grading import is_equivalent
from rstar_pipeline.llm.base import SamplingConfig
from rstar_pipeline.llm.config import GeneratorConfig, ScorerConfig, make_generator, make_scorer
from rstar_pipeline.problemsets import HF_PREFIX, Problem, ProblemsConfig, Rejected, load_problems, source_name
from rstar_pipeline.sandbox import SandboxConfig, make_sandbox
from rstar_pipeline.search.greedy import solve_greedy, solve_sampled

METHODS = ("greedy", "best_of_n", "majority", "mcts", "mcts_majority")
NEEDS_PPM = ("best_of_n", "mcts", "mcts_majority")
MCTS_PICKS = ("q", "vote")


@dataclass(frozen=True)
class HeldoutConfig:
    problems: int = field(default=200, metadata={"help": "held-out mini-world problems (split 'test'); 0 = skip"})
    seed: int = field(default=0, metadata={"help": "held-out problem seed"})
    max_level: int = field(default=6, metadata={"help": "held-out problems have levels 1 to this"})
    max_tokens: int = field(default=512, metadata={"help": "longest code block or answer, tokens"})


@dataclass(frozen=True)
class EvalConfig:
    benchmarks: tuple[str, ...] = field(default=("miniworld",), metadata={
        "help": "'miniworld' (held-out problems), paths to .json / .jsonl / .parquet problem files, or "
                "hf:NAME[:CONFIG][@SPLIT] Hugging Face datasets"})
    methods: tuple[str, ...] = field(default=("greedy",), metadata={
        "help": "greedy, best_of_n, majority, mcts, mcts_majority (a vote over mcts_runs MCTS runs)"})
    limit: int = field(default=0, metadata={"help": "first N problems of each benchmark; 0 = all"})
    mcts_limit: int = field(default=0, metadata={
        "help": "mcts and mcts_majority: only the first N of those problems (a search costs ~20 greedy solutions "
                "on a CPU); 0 = all"})
    miniworld_problems: int = field(default=200, metadata={"help": "size of the mini-world benchmark"})
    miniworld_max_level: int = field(default=6, metadata={"help": "mini-world benchmark problems have levels 1 to this"})
    n: int = field(default=8, metadata={"help": "sampled solutions per problem for best_of_n and majority"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature for best_of_n and majority"})
    max_tokens: int = field(default=1024, metadata={"help": "longest code block or answer, tokens"})
    mcts_rollouts: int = field(default=8, metadata={"help": "mcts: rollouts per problem (paper: 8 to 64)"})
    mcts_samples: int = field(default=4, metadata={"help": "mcts: children per expansion"})
    mcts_temperature: float = field(default=1.0, metadata={
        "help": "mcts: sampling temperature of the expansions (reference sft_eval_mcts: 1.0)"})
    mcts_pick: str = field(default="q", metadata={
        "help": "mcts: the answer of a search, 'q' (the answer node with the highest Q, as the paper) or 'vote' "
                "(the answer most answer nodes give, among those the answer check keeps; ties go to the highest "
                "Q): a vote beats a weak PPM's pick (bench/mcts_pick.py)"})
    mcts_runs: int = field(default=4, metadata={"help": "mcts_majority: independent MCTS runs (seeds seed, seed+1, ...)"})
    mcts_top_n: int = field(default=0, metadata={
        "help": "mcts_majority: vote among the N run answers the PPM scores highest (reference eval_maj.py: 4); 0 = all"})
    answer_matches_output: bool = field(default=False, metadata={
        "help": "best_of_n and mcts: a solution whose answer contradicts the last program output before it is "
                "not picked while another is (mcts: a failed terminal, see SearchConfig); the paper's picks use "
                "the PPM alone (off)"})
    seed: int = field(default=0, metadata={"help": "sampling seed and mini-world benchmark seed"})
    generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(backend="transformers"), metadata={
        "help": "policy backend (transformers, vllm or openai); its `model` is ignored: the evaluated policy is"})
    scorer: ScorerConfig = field(default_factory=ScorerConfig, metadata={
        "help": "PPM backend (transformers or vllm); its `model` is ignored: the evaluated PPM is"})
    sandbox: SandboxConfig = field(default_factory=SandboxConfig, metadata={"help": "where the policy's code runs"})

    def __post_init__(self):
        if self.generator.backend == "teacher":
            raise ValueError("evaluation: the generator backend must be transformers, vllm or openai, not teacher")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"evaluation methods must be among {METHODS}, not {unknown or 'none'}")
        if self.mcts_pick not in MCTS_PICKS:
            raise ValueError(f"evaluation: mcts_pick must be one of {MCTS_PICKS}, not {self.mcts_pick!r}")
        if self.n < 1 or self.mcts_runs < 1 or min(self.limit, self.mcts_top_n, self.mcts_limit) < 0:
            raise ValueError("evaluation: n and mcts_runs must be >= 1, limit, mcts_limit and mcts_top_n >= 0")


def load_benchmark(spec: str, config: EvalConfig) -> tuple[str, list[Problem], list[Rejected]]:
    """(benchmark name, problems, rejected rows) for 'miniworld', a problem file or an `hf:` dataset;
    a source that cannot be read fails naming it."""
    if spec == "miniworld":
        problems_config = ProblemsConfig(count=config.miniworld_problems, split="test", seed=config.seed,
                                         max_level=config.miniworld_max_level, name="miniworld", limit=config.limit)
    else:
        if not spec.startswith(HF_PREFIX) and not Path(spec).expanduser().exists():
            raise FileNotFoundError(f"benchmark file {spec} does not exist")
        # scored as published: repeated questions stay, long (proof-style) references are graded
        problems_config = ProblemsConfig(source=spec, split="test", limit=config.limit, keep_duplicates=True,
                                         max_answer_chars=100_000)
    problems, rejected = load_problems(problems_config)
    return source_name(problems_config), problems, rejected


@dataclass
class Evaluation:
    """What `evaluate` returns: per method one row per problem, and figures about the method's run that
    are not per problem (recorded with its rows)."""

    rows: dict[str, list[dict]]
    figures: dict[str, dict] = field(default_factory=dict)


def evaluate(generator, scorer, problems, config: EvalConfig, sandbox) -> Evaluation:
    """Rows {problem_id, prediction, correct, score} per method, for one policy (and PPM) on problems."""
    missing_ppm = [m for m in config.methods if m in NEEDS_PPM] if scorer is None else []
    if missing_ppm:
        raise ValueError(f"evaluation methods {missing_ppm} need a PPM (scorer)")
    out, figures = {}, {}
    if "greedy" in config.methods:
        results = solve_greedy(problems, generator, sandbox, max_tokens=config.max_tokens)
        out["greedy"] = [_row(r.problem_id, r.prediction, r.is_correct, None) for r in results]
    if "mcts" in config.methods or "mcts_majority" in config.methods:
        out |= _mcts(problems[:config.mcts_limit or None], generator, scorer, sandbox, config)
    sampled_methods = [m for m in config.methods if m in ("best_of_n", "majority")]
    if sampled_methods:
        sampling = SamplingConfig(n=config.n, temperature=config.temperature, max_tokens=config.max_tokens,
                                  seed=config.seed)
        groups = solve_sampled(problems, generator, sandbox, sampling)
        if "best_of_n" in sampled_methods:
            out["best_of_n"], figures["best_of_n"] = _best_of_n(problems, groups, scorer, config.answer_matches_output)
        if "majority" in sampled_methods:
            out["majority"] = [_majority(group) for group in groups]
    return Evaluation(out, figures)


def _row(problem_id, prediction, correct, score) -> dict:
    return {"problem_id": problem_id, "prediction": prediction, "correct": bool(correct), "score": score}


def _best_of_n(problems, groups, scorer, answer_check: bool = False) -> tuple[list[dict], dict]:
    """Per problem, the sampled solution whose whole text the PPM scores highest (the paper's best-of-N);
    with `answer_check`, the highest among those whose answer agrees with their program's output, when
    any does. Every solution is scored in one call (the scorer batches). Also how the PPM ranks the
    samples themselves (`sample_pairs`: the PPM alone, whatever the pick) and, with the check, the share
    of samples it set aside."""
    from rstar_pipeline.steps import answer_matches_output, load_template

    template = load_template("sft")
    texts = [template.build(p.question) + r.solution for p, group in zip(problems, groups) for r in group]
    scores, rows, scored, at, set_aside = scorer.score(texts), [], [], 0, 0
    for p, group in zip(problems, groups):
        mine = scores[at:at + len(group)]
        at += len(group)
        agree = [not answer_check or answer_matches_output(r.solution, r.prediction) for r in group]
        set_aside += agree.count(False)
        best = max(range(len(group)), key=lambda k: (agree[k], mine[k]))
        rows.append(_row(p.problem_id, group[best].prediction, group[best].is_correct, float(mine[best])))
        scored.append([(r.is_correct, s) for r, s in zip(group, mine)])
    figures = sample_pairs(scored)
    if answer_check:
        figures["answer_mismatch_share"] = set_aside / max(1, at)
    return rows, figures


def sample_pairs(scored: list[list[tuple[bool, float]]]) -> dict:
    """How the PPM ranks the policy's own samples of problems neither model trained on: over every
    (correct, wrong) pair of samples of one problem, the share it scores the correct one higher (ties
    count as wrong, as in training's pair metrics). The PPM's held-out pairs come from problems the
    policy was fine-tuned on; these do not, and they are the choices best-of-N and the search make."""
    right = total = problems = 0
    for group in scored:
        good = [s for ok, s in group if ok]
        bad = [s for ok, s in group if not ok]
        right += sum(g > b for g in good for b in bad)
        total += len(good) * len(bad)
        problems += bool(good and bad)
    return {"ppm_sample_pairs": total, "ppm_sample_pair_problems": problems,
            "ppm_sample_pair_accuracy": right / total if total else None}


def _majority(group) -> dict:
    """The most frequent answer among the samples (see `_vote`); score = its share of the votes."""
    k, share = _vote([r.prediction for r in group])
    if k is None:
        return _row(group[0].problem_id, None, False, 0.0)
    return _row(group[k].problem_id, group[k].prediction, group[k].is_correct, share)


def _vote(predictions: list[str | None]) -> tuple[int | None, float]:
    """Index of the first answer of the largest group of predictions the grader finds equivalent
    (\\frac{1}{2} and \\dfrac12 vote together), and that group's share; ties go to the earliest group.
    (None, 0.0) when there is no answer at all."""
    clusters: list[list[int]] = []
    for i, p in enumerate(predictions):
        if p:
            home = next((c for c in clusters if is_equivalent(p, [predictions[c[0]]])), None)
            home.append(i) if home is not None else clusters.append([i])
    if not clusters:
        return None, 0.0
    winner = max(clusters, key=len)
    return winner[0], len(winner) / len(predictions)


def _mcts(problems, generator, scorer, sandbox, config: EvalConfig) -> dict[str, list[dict]]:
    """MCTS with the PPM and no ground truth (every new step, answers included, is valued by the PPM).
    mcts: the answer node with the highest Q of one run, as in the paper; mcts_majority: a vote over the
    best answers of `mcts_runs` runs with seeds seed, seed+1, ... (the first run is the mcts run), among
    the `mcts_top_n` with the highest Q when set (as the reference's eval_maj.py)."""
    runs = config.mcts_runs if "mcts_majority" in config.methods else 1
    answers = [_mcts_answers(problems, generator, scorer, sandbox, config, config.seed + k) for k in range(runs)]
    out = {}
    if "mcts" in config.methods:
        out["mcts"] = [_graded(p, *answers[0][i]) for i, p in enumerate(problems)]
    if "mcts_majority" in config.methods:
        out["mcts_majority"] = [_graded(p, *_vote_runs([run[i] for run in answers], config.mcts_top_n))
                                for i, p in enumerate(problems)]
    return out


def _vote_runs(answers: list[tuple], top_n: int) -> tuple[str | None, float]:
    """Majority over one problem's (answer, Q) of several runs, among the `top_n` highest Q (0 = all);
    a tie goes to the group holding the highest-Q answer. Returns (answer, vote share)."""
    ranked = sorted(answers, key=lambda a: -a[1] if a[0] else float("inf"))
    voters = [a[0] for a in ranked[:top_n or None]]
    k, share = _vote(voters)
    return (voters[k] if k is not None else None), share


def _graded(problem, prediction: str | None, score: float | None) -> dict:
    correct = prediction is not None and is_equivalent(prediction, problem.answers)
    return _row(problem.problem_id, prediction, correct, score)


def _mcts_answers(problems, generator, scorer, sandbox, config: EvalConfig, seed: int) -> list[tuple]:
    """(final answer, Q) of the answer node `mcts_pick` picks in one MCTS run per problem; (None, None)
    when the search found no answer."""
    best = []
    for nodes in mcts_answer_nodes(problems, generator, scorer, sandbox, config, seed):
        top = picked_answer(nodes, config.mcts_pick) if nodes else None
        best.append((top.final_answer, top.q) if top else (None, None))
    return best


def mcts_answer_nodes(problems, generator, scorer, sandbox, config: EvalConfig, seed: int) -> list[list]:
    """The answer nodes of one MCTS run per problem, guided by the PPM without ground truth."""
    from rstar_pipeline.search.config import SearchConfig
    from rstar_pipeline.search.mcts import run_search
    from rstar_pipeline.search.tree import Terminal

    search = SearchConfig(rollouts=config.mcts_rollouts, n_samples=config.mcts_samples, template="sft",
                          temperature=config.mcts_temperature, errors_threshold=1, ppm_init=True,
                          answer_matches_output=config.answer_matches_output,
                          max_tokens=config.max_tokens, seed=seed)
    trees, _ = run_search(problems, generator, sandbox, search, scorer=scorer, grader=None)
    return [[n for n in tree.nodes if n.terminal == Terminal.ANSWER and n.final_answer] for tree in trees]


def picked_answer(nodes: list, pick: str):
    """The answer node of a search that `pick` ('q' or 'vote') chooses. Without ground truth an answer node
    is judged (is_correct False) only by the answer check: a vote counts the others when there are any."""
    ranked = sorted(nodes, key=lambda n: -n.q)
    if pick == "q":
        return ranked[0]
    voters = [n for n in ranked if n.is_correct is not False] or ranked
    k, _ = _vote([n.final_answer for n in voters])  # ties go to the earliest group: the highest Q
    return voters[k]


def evaluations_table(round: int, shard: str, model: str, benchmark: str, method: str, rows: list[dict]) -> pa.Table:
    """`evaluations` rows (see warehouse/schemas.py) for one method's results on one benchmark."""
    from rstar_pipeline.warehouse.schemas import EVALUATIONS

    return pa.Table.from_pylist([{"round": round, "shard": shard, "benchmark": benchmark, "method": method,
                                  "model": model, **r} for r in rows], schema=EVALUATIONS)


def evaluate_checkpoint(store, round: int, policy, ppm, config: EvalConfig) -> tuple[list[dict], list[Rejected]]:
    """Evaluate a policy `Checkpoint` (and PPM, or None) on every configured benchmark and method, write
    the rows to the `evaluations` table (round 0: any checkpoint, told apart by its path's digest) and
    return them with the benchmark rows that were rejected (e.g. an empty reference answer), for the
    caller to report. Methods that need a PPM are left out when there is none."""
    from dataclasses import asdict, replace

    from rstar_pipeline.checkpoints import digest

    generator = make_generator(config.generator, policy.path)
    scorer = make_scorer(config.scorer, ppm.path) if ppm else None
    if scorer is None:
        without_ppm = tuple(m for m in config.methods if m not in NEEDS_PPM)
        config = replace(config, methods=without_ppm or ("greedy",))
    written, rejected = [], []
    with closing(make_sandbox(config.sandbox)) as sandbox:
        for spec in config.benchmarks:
            name, problems, bad = load_benchmark(spec, config)
            rejected += bad
            result = evaluate(generator, scorer, problems, config, sandbox)
            for method, rows in result.rows.items():
                shard = f"{name}.{method}" + ("" if round else f".{digest(policy.path)[:8]}")
                table = evaluations_table(round, shard, policy.path, name, method, rows)
                store.write("evaluations", table, shard, round, {
                    "config": asdict(config), "policy": policy.identity, "ppm": ppm.identity if ppm else None,
                    "rejected": [asdict(r) for r in bad], "figures": result.figures.get(method, {})})
                written += table.to_pylist()
    return written, rejected


def round_rows(store) -> list[dict]:
    """Every round's evaluations rows (round, benchmark, method, correct): what Table 6 and the chart show."""
    from rstar_pipeline.warehouse.views import query

    return query(store, "SELECT round, benchmark, method, correct FROM evaluations WHERE round > 0").to_pylist()


def accuracy(rows: list[dict], by: tuple[str, ...]) -> dict[tuple, float]:
    """Share of correct rows per group of `by` columns (evaluations rows)."""
    hits, totals = defaultdict(int), defaultdict(int)
    for r in rows:
        key = tuple(r[c] for c in by)
        totals[key] += 1
        hits[key] += bool(r["correct"])
    return {k: hits[k] / totals[k] for k in totals}


def table6(rows: list[dict]) -> str:
    """Markdown accuracy table shaped like the paper's Table 6: a row per (round, method), a column per
    benchmark. `rows` are evaluations rows."""
    acc = accuracy(rows, ("round", "method", "benchmark"))
    benchmarks = sorted({k[2] for k in acc})
    lines = ["| round | method | " + " | ".join(benchmarks) + " |", "|---|---|" + "---|" * len(benchmarks)]
    for rnd, method in sorted({k[:2] for k in acc}, key=lambda k: (k[0], METHODS.index(k[1]))):
        cells = [f"{100 * acc[(rnd, method, b)]:.1f}" if (rnd, method, b) in acc else "" for b in benchmarks]
        lines.append(f"| {rnd} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def accuracy_chart(rows: list[dict], path: str | Path) -> Path:
    """A PNG of accuracy by round: a panel per benchmark, a line per method. `rows` are evaluations rows."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    acc = accuracy(rows, ("benchmark", "method", "round"))
    benchmarks = sorted({k[0] for k in acc})
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(4 * len(benchmarks), 3.6), sharey=True, squeeze=False)
    for ax, benchmark in zip(axes[0], benchmarks):
        for method in sorted({k[1] for k in acc if k[0] == benchmark}, key=METHODS.index):
            rounds = sorted(k[2] for k in acc if k[:2] == (benchmark, method))
            ax.plot(rounds, [100 * acc[(benchmark, method, r)] for r in rounds], marker="o", label=method,
                    color=f"C{METHODS.index(method)}")  # one colour per method in every panel
        ax.set(title=benchmark, xlabel="round", xticks=sorted({k[2] for k in acc}))
    axes[0][0].set_ylabel("accuracy (%)")
    legend = {label: h for ax in axes[0] for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=len(legend), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def heldout_accuracy(model_path: str, config: HeldoutConfig) -> dict:
    """Greedy pass@1 of the policy at `model_path` on held-out mini-world problems, overall and by level."""
    from rstar_pipeline.llm.hf import TransformersGenerator

    problems, _ = load_problems(ProblemsConfig(count=config.problems, split="test", seed=config.seed,
                                               max_level=config.max_level))
    generator = TransformersGenerator(model_path, batch_size=64)
    with closing(make_sandbox(SandboxConfig(preload=("math", "fractions")))) as sandbox:
        results = solve_greedy(problems, generator, sandbox, max_tokens=config.max_tokens)
    by_level = defaultdict(list)
    for p, r in zip(problems, results):
        by_level[p.level].append(r.is_correct)
    return {"heldout_greedy_pass1": sum(r.is_correct for r in results) / max(len(results), 1),
            **{f"heldout_level_{lv}": sum(v) / len(v) for lv, v in sorted(by_level.items())}}
