"""The mini world: problem generator and the bootstrap teacher."""

import collections
from dataclasses import replace

import pytest

from rstar_pipeline.grading import is_equivalent
from rstar_pipeline.llm.base import SamplingConfig
from rstar_pipeline.miniworld.problems import SENTENCES, generate, read_question
from rstar_pipeline.miniworld.teacher import BootstrapTeacher, TeacherConfig
from rstar_pipeline.problemsets import Problem
from rstar_pipeline.sandbox import make_sandbox
from rstar_pipeline.search.config import SearchConfig
from rstar_pipeline.search.greedy import solve_sampled
from rstar_pipeline.search.label import best_correct_path
from rstar_pipeline.search.mcts import run_search
from rstar_pipeline.steps import SEARCH_STOP, STEP_END, StepKind, load_template, output_block, parse_step, program

BOOT = load_template("bootstrap")


def test_generator_is_seeded_and_exact():
    """Same seed, same problems; answers are the exact result of the operations; levels 1-5 by default."""
    a, b = generate(300, 7), generate(300, 7)
    assert a == b and a != generate(300, 8)
    assert set(p.level for p in a) == {1, 2, 3, 4, 5}
    assert set(p.level for p in generate(300, 7, 3, 8)) == {3, 4, 5, 6, 7, 8}
    for p in a:
        value = p.start
        for op in p.ops:
            value = op.apply(value)
        assert value == p.answer and len(p.ops) == p.level and value >= 0


def test_questions_read_back_into_operations():
    """read_question inverts the templates exactly."""
    for p in generate(300, 1):
        r = read_question(p.question)
        assert (r.name, r.item, r.start, r.ops) == (p.name, p.item, p.start, p.ops)


def test_read_question_rejects_other_text():
    """Text outside the templates is not guessed at."""
    with pytest.raises(ValueError):
        read_question("What is 2 + 2?")


def solve(teacher, question, temperature, seed, sandbox, max_steps=12):
    """Roll one solution out with the teacher, executing code steps like the search does."""
    partial, codes, step = "", [], None
    for _ in range(max_steps):
        c = teacher.generate([BOOT.build(question, partial)], SamplingConfig(
            n=1, temperature=temperature, stop=SEARCH_STOP, seed=seed))[0][0]
        step = parse_step(c.text, c.stop)
        if step.kind is StepKind.ANSWER:
            return partial + step.text, step.answer
        codes.append(step.code)
        result = sandbox.execute(program(codes))
        if not result.ok:
            return partial + step.text, None
        partial += step.text + (output_block(result.stdout) if step.kind is StepKind.CODE_END else "")
    return partial, None


@pytest.fixture(scope="module")
def sandbox():
    with make_sandbox() as sb:
        yield sb


def test_greedy_teacher_without_confusions_is_always_right(sandbox):
    """With no confusing sentences and no span, the greedy teacher makes no mistakes: every solution
    executes to the exact answer."""
    teacher = BootstrapTeacher(TeacherConfig(confusions=(), span=0))
    for i, p in enumerate(generate(60, 2, max_level=8)):
        _, answer = solve(teacher, p.question, 0.0, i, sandbox)
        assert is_equivalent(answer, [str(p.answer)]), p.question


def test_sampled_solutions_continue_a_partial_solution(sandbox):
    """`solve_sampled(partials=...)` (Monte-Carlo completions of a step): each solution starts with its
    partial solution and continues it, so a right first step leads to the answer and the same step with a
    wrong start value leads to a wrong one."""
    teacher = BootstrapTeacher(TeacherConfig(confusions=(), span=0))
    mini = generate(8, 3, min_level=2, max_level=4)
    problems = [Problem(f"p{i}", "miniworld", "test", p.question, (str(p.answer),)) for i, p in enumerate(mini)]
    greedy = SamplingConfig(n=1, temperature=0.0, max_tokens=512)
    whole = [g[0].solution for g in solve_sampled(problems, teacher, sandbox, greedy)]
    firsts = [s[:s.index(STEP_END) + len(STEP_END)] for s in whole]
    wrong = [f.replace(f"= {p.start}\n", f"= {p.start + 1}\n") for f, p in zip(firsts, mini)]
    assert all(w != f for w, f in zip(wrong, firsts))
    for partials, correct in ((firsts, True), (wrong, False)):
        groups = solve_sampled(problems, teacher, sandbox, greedy, partials=partials)
        assert [g[0].solution[:len(h)] for g, h in zip(groups, partials)] == partials
        assert [g[0].is_correct for g in groups] == [correct] * len(problems)
    with pytest.raises(ValueError, match="2 partial solutions for 8 problems"):
        solve_sampled(problems, teacher, sandbox, greedy, partials=firsts[:2])


def test_greedy_teacher_misreads_confusing_sentences_and_long_problems(sandbox):
    """The default teacher's greedy reading fails exactly where it is confused: a 'shares with k friends'
    or 'grows to b times' sentence, or an operation past its span; everything else it solves."""
    teacher = BootstrapTeacher()
    confusing = {SENTENCES["div"][1], SENTENCES["mul"][0]}
    outcomes = collections.Counter()
    for i, p in enumerate(generate(150, 9, max_level=7)):
        _, answer = solve(teacher, p.question, 0.0, i, sandbox)
        hard = p.level > 5 or bool(confusing & set(read_question(p.question).templates))
        outcomes[hard, is_equivalent(answer, [str(p.answer)])] += 1
    assert outcomes[False, False] == 0 and outcomes[False, True] > 20
    assert outcomes[True, False] > 40 and outcomes[True, True] <= 0.1 * outcomes[True, False]


def test_sampled_teacher_sometimes_reads_confusing_sentences_right(sandbox):
    """Sampled, the teacher misreads a confusing sentence only at confusion_rate, so that search finds
    the right reading the greedy teacher never writes."""
    problems = [p for p in generate(200, 10, max_level=3)
                if SENTENCES["mul"][0] in read_question(p.question).templates][:20]
    teacher = BootstrapTeacher(TeacherConfig(mistake_rate=0.0, confusion_rate=0.5))
    right = sum(is_equivalent(solve(teacher, p.question, 1.0, seed, sandbox)[1], [str(p.answer)])
                for p in problems for seed in range(4))
    assert len(problems) == 20 and 20 <= right <= 60


def test_sampled_teacher_makes_mistakes_at_its_rate(sandbox):
    """At temperature > 0 some solutions go wrong, more with a higher mistake rate."""
    problems = generate(80, 3)

    def accuracy(rate):
        teacher = BootstrapTeacher(TeacherConfig(mistake_rate=rate, confusions=(), span=0))
        return sum(is_equivalent(solve(teacher, p.question, 1.0, i, sandbox)[1], [str(p.answer)])
                   for i, p in enumerate(problems)) / len(problems)

    low, high = accuracy(0.05), accuracy(0.4)
    assert 0.5 < low < 1.0 and high < low - 0.2


def test_teacher_mistake_kinds_all_occur():
    """Every mistake kind shows up: wrong numbers, wrong operators, failing code, early answers."""
    teacher = BootstrapTeacher(TeacherConfig(mistake_rate=1.0))
    p = next(p for p in generate(50, 4) if p.level >= 3)
    partial = "<code>\n# Step 1: start\ntotal = %d\n<end_of_step>" % p.start
    texts = [c.text for c in teacher.generate([BOOT.build(p.question, partial)],
                                              SamplingConfig(n=200, temperature=1.0, stop=SEARCH_STOP))[0]]
    kinds = collections.Counter("print(" in t or "_total" in t or "per_" in t or '"' in t or t.rstrip().endswith(")")
                                for t in texts)
    assert kinds[True] > 0 and kinds[False] > 0
    assert any("print(total)" in t for t in texts)  # premature answer
    assert any('"' in t or "per_" in t or "_total" in t for t in texts)  # code that raises


def test_teacher_honours_n_stop_and_seed():
    """n samples per prompt, stop strings cut and reported, same seed same samples."""
    teacher = BootstrapTeacher()
    prompt = BOOT.build(generate(1, 5)[0].question)
    s = SamplingConfig(n=5, temperature=0.7, stop=SEARCH_STOP, seed=3)
    first = teacher.generate([prompt, prompt], s)
    assert len(first) == 2 and all(len(c) == 5 for c in first)
    assert all(c.stop == "<end_of_step>" and "<end_of_step>" not in c.text for c in first[0])
    assert teacher.generate([prompt], s)[0] == first[0]
    no_stop = teacher.generate([prompt], SamplingConfig(n=1, temperature=0.0))[0][0]
    assert no_stop.stop is None and no_stop.text.endswith("<end_of_code>")  # writes on until it needs the output
    assert no_stop.text.count("<end_of_step>") == len(read_question(generate(1, 5)[0].question).ops) + 1


def test_teacher_reads_the_sft_template_too():
    """The teacher reads fine-tuned-style prompts as well."""
    sft = load_template("sft")
    c = BootstrapTeacher().generate([sft.build(generate(1, 6)[0].question)],
                                    SamplingConfig(n=1, temperature=0, stop=SEARCH_STOP))[0][0]
    assert c.text.startswith("<code>\n# Step 1")


def test_pretraining_reading_documents_copy_the_prose_and_run(sandbox):
    """A reading document writes down every number of its prose, in order: a question's documents quote
    each sentence in a comment before assigning its numbers, a list's document assigns each listed number;
    its program prints the value its <output> shows. With share 0 the corpus has no reading documents."""
    import random
    import re

    from rstar_pipeline.miniworld.pretrain import documents, question_reading, reading
    from rstar_pipeline.miniworld.student import StudentConfig
    from rstar_pipeline.steps import step_code

    lists = [reading(random.Random(k)) for k in range(30)]
    for doc in lists:
        sentence, rest = doc.split("\n", 1)
        assigned = re.findall(r"^\w+ = (\d+)$", rest, flags=re.M)
        assert assigned == re.findall(r"\d+", sentence) and len(assigned) >= 2
    questions = [question_reading(random.Random(k)) for k in range(30)]
    for doc in questions:
        question, rest = doc.split("\n", 1)
        quoted = re.findall(r"^# Step \d+: (.*)$", rest, flags=re.M)
        assert " ".join(quoted) + " " + question.rsplit(". ", 1)[1] == question  # every sentence, in order
        assigned = [re.findall(r"\d+", a) for a in re.findall(r"^step_\d+ = (.*)$", rest, flags=re.M)]
        assert assigned == [re.findall(r"\d+", q) for q in quoted]
    docs = lists + questions
    results = sandbox.run([step_code(doc.split("\n", 1)[1]) for doc in docs])
    assert [r.stdout.strip() for r in results] == [re.search(r"<output>(\d+)", d).group(1) for d in docs]
    assert documents(50, 1) == documents(50, 1, 0.0)
    for kind in ("questions", "lists"):
        mixed = documents(200, 1, 0.3, kind)
        assert 30 < sum(d.count("# Step 1:") for d in mixed) < 90  # about 30% reading documents
    with pytest.raises(ValueError, match="pretrain_reading"):
        StudentConfig(pretrain_reading="sentences")


def test_search_labels_sibling_steps_with_monte_carlo_completions(sandbox):
    """With label_completions, exactly the non-terminal children of the multi-child prefixes on each
    problem's best correct path get `m` teacher completions (the first `label_prefixes` prefixes when
    set). A teacher's mistake is never undone, so a sibling off the best path completes correctly less
    often than the step the best path took."""
    teacher = BootstrapTeacher(TeacherConfig(confusions=(), span=0, mistake_rate=0.3))
    mini = generate(12, 5, min_level=3, max_level=5)
    problems = [Problem(f"p{i}", "miniworld", "train", p.question, (str(p.answer),)) for i, p in enumerate(mini)]
    config = SearchConfig(rollouts=3, n_samples=3, template="bootstrap", seed=1, label_completions=4)
    trees, stats = run_search(problems, teacher, sandbox, config)

    def expected(tree, first):
        path = best_correct_path(tree)
        prefixes = [n for n in path[:-1] if len(n.children) >= 2][:first or None]
        return {c for p in prefixes for c in p.children if not tree.nodes[c].is_terminal}

    on_path, off_path = [], []
    for tree in trees:
        labelled = {n.node_id for n in tree.nodes if n.mc_samples is not None}
        assert labelled == expected(tree, 0)
        path_ids = {n.node_id for n in best_correct_path(tree)}
        for i in labelled:
            node = tree.nodes[i]
            assert node.mc_samples == 4 and 0 <= node.mc_correct <= 4
            (on_path if i in path_ids else off_path).append(node.mc_correct / 4)
    assert stats.labelled_steps == len(on_path) + len(off_path) and stats.label_completions == 4 * stats.labelled_steps
    assert len(on_path) >= 8 and len(off_path) >= 8
    assert sum(on_path) / len(on_path) > sum(off_path) / len(off_path) + 0.1  # measured: 0.61 vs 0.41

    first_only, _ = run_search(problems, teacher, sandbox, replace(config, label_prefixes=1))
    for tree in first_only:
        assert {n.node_id for n in tree.nodes if n.mc_samples is not None} == expected(tree, 1)
    with pytest.raises(ValueError, match="label_completions needs ground truth"):
        run_search(problems, teacher, sandbox, replace(config, ppm_init=True),
                   scorer=object(), grader=None)
