"""Tests of problem-set loading, validation, identity and sharding (rstar_pipeline.problemsets)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared_data import SHARED_DATA, needs_shared
from rstar_pipeline.problemsets import (
    Problem,
    ProblemFileError,
    ProblemsConfig,
    Rejected,
    load_problems,
    parse_hf_source,
    problem_id,
    shard_of,
)
from rstar_pipeline.stages import shard_keys, write_problem_shards
from rstar_pipeline.warehouse.store import Warehouse

BIG_QUESTION = "x" * 1_000_000


def _line(obj) -> bytes:
    return json.dumps(obj).encode("utf-8")


# ---------------------------------------------------------------- a mixed JSON Lines file

# (line number, raw line bytes); every line of the file, in order
JSONL_LINES: list[bytes] = [
    _line({"question": "What is 1+1?", "answer": "2"}),                       # 1 good
    b"",                                                                       # 2 blank
    _line({"question": "No answer here"}),                                     # 3 missing answer
    _line({"question": "", "answer": "1"}),                                    # 4 empty question
    _line({"question": "   \t ", "answer": "1"}),                              # 5 whitespace question
    _line({"question": "What is 1+1?", "answer": "2"}),                       # 6 duplicate of row 1
    b'{"question": "caf\xe9", "answer": "1"}',                                 # 7 invalid UTF-8
    _line({"question": BIG_QUESTION, "answer": "1"}),                          # 8 1 MB question
    b'{"question": "broken", "answer": ]',                                     # 9 invalid JSON
    _line(["question", "answer"]),                                             # 10 JSON array
    _line({"question": "Null answer?", "answer": None}),                       # 11 answer null
    _line({"question": "Empty list answer?", "answer": []}),                   # 12 answer []
    _line({"question": "Seven?", "answer": 7}),                                # 13 good, numeric answer
    b"   \t",                                                                  # 14 whitespace-only line
    _line({"question": "Half?", "answer": ["1/2", "0.5"]}),                    # 15 good, list answer
    _line({"question": "Last one", "answer": " 42 ", "level": 3, "subject": "Arithmetic"}),  # 16 good
]

JSONL_GOOD = [  # (row, question, answers, level, subject)
    (1, "What is 1+1?", ("2",), None, None),
    (13, "Seven?", ("7",), None, None),
    (15, "Half?", ("1/2", "0.5"), None, None),
    (16, "Last one", ("42",), 3, "Arithmetic"),
]

JSONL_REJECTED = [  # (row, key words the reason must contain)
    (3, ["missing answer"]),
    (4, ["empty question"]),
    (5, ["empty question"]),
    (6, ["duplicate", "row 1"]),
    (7, ["UTF-8"]),
    (8, ["1,000,000", "over the limit", "20,000"]),
    (9, ["invalid JSON"]),
    (10, ["list", "not an object"]),
    (11, ["missing answer"]),
    (12, ["missing answer"]),
]


@pytest.fixture
def jsonl_file(tmp_path) -> Path:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(JSONL_LINES) + b"\n")
    return path


@pytest.fixture
def jsonl_loaded(jsonl_file):
    return load_problems(ProblemsConfig(source=str(jsonl_file)))


def test_jsonl_good_rows_load_in_file_order(jsonl_loaded):
    """Exactly the valid JSONL rows load, in file order, with their fields."""
    problems, _ = jsonl_loaded
    got = [(p.question, p.answers, p.level, p.subject) for p in problems]
    assert got == [(q, a, lvl, subj) for _, q, a, lvl, subj in JSONL_GOOD]
    for p in problems:
        assert isinstance(p, Problem)
        assert p.source == "mixed"
        assert p.split == "train"
        assert p.problem_id == problem_id("mixed", p.question)


def test_jsonl_numeric_answer_becomes_string(jsonl_loaded):
    """A numeric answer 7 is accepted as the string "7"."""
    problems, _ = jsonl_loaded
    seven = next(p for p in problems if p.question == "Seven?")
    assert seven.answers == ("7",)


def test_jsonl_list_answer_becomes_tuple(jsonl_loaded):
    """A list answer is kept as a tuple of every accepted answer."""
    problems, _ = jsonl_loaded
    half = next(p for p in problems if p.question == "Half?")
    assert half.answers == ("1/2", "0.5")
    assert isinstance(half.answers, tuple)


def test_jsonl_rejected_rows_are_exactly_the_bad_lines(jsonl_loaded):
    """The rejected rows are exactly the bad lines, by 1-based line number, in file order."""
    _, rejected = jsonl_loaded
    assert [r.row for r in rejected] == [row for row, _ in JSONL_REJECTED]
    assert all(isinstance(r, Rejected) and r.source == "mixed" for r in rejected)


@pytest.mark.parametrize("row,words", JSONL_REJECTED, ids=[f"line{r}" for r, _ in JSONL_REJECTED])
def test_jsonl_rejection_reason_says_what_is_wrong(jsonl_loaded, row, words):
    """Each rejected JSONL line carries a reason naming the problem."""
    _, rejected = jsonl_loaded
    by_row = {r.row: r for r in rejected}
    assert row in by_row, f"line {row} was not rejected"
    for word in words:
        assert word in by_row[row].reason, f"line {row}: {word!r} not in {by_row[row].reason!r}"


def test_jsonl_duplicate_keeps_first_and_carries_its_id(jsonl_loaded):
    """The second copy of a question is rejected with the first copy's problem id."""
    problems, rejected = jsonl_loaded
    dup = next(r for r in rejected if r.row == 6)
    first = next(p for p in problems if p.question == "What is 1+1?")
    assert dup.problem_id == first.problem_id


def test_jsonl_blank_lines_are_skipped_without_rejection(jsonl_loaded):
    """Empty and whitespace-only lines are neither loaded nor rejected, yet still count as lines."""
    problems, rejected = jsonl_loaded
    assert {r.row for r in rejected}.isdisjoint({2, 14})
    non_blank = sum(1 for line in JSONL_LINES if line.strip())
    assert len(problems) + len(rejected) == non_blank


def test_rejection_preview_is_short_and_printable(jsonl_loaded):
    """Rejected rows carry a short preview, even for a 1 MB question or invalid UTF-8 bytes."""
    _, rejected = jsonl_loaded
    by_row = {r.row: r for r in rejected}
    assert all(len(r.preview) <= 123 for r in rejected)
    assert by_row[8].preview.startswith('{"question": "xxx')
    assert "\\xe9" in by_row[7].preview
    for r in rejected:
        r.preview.encode("utf-8")  # no lone surrogates


# ---------------------------------------------------------------- a mixed JSON-list (rStar eval) file

def _obj(index: int, **fields) -> bytes:
    return _line({"index": index, **fields})


JSON_ITEMS: list[bytes] = [
    _obj(0, question="Q zero", answer="0"),                                   # 1 good
    b'{"index": 1, "question": "caf\xe9 au lait?", "answer": "3"}',           # 2 bad bytes in question
    _obj(2, question="Q two", answer=["1/2", "0.5"]),                         # 3 good, list answer
    _obj(3, question="", answer="1"),                                         # 4 empty question
    _obj(4, question="Q zero", answer="0"),                                   # 5 duplicate of row 1
    _obj(5, question="No answer"),                                            # 6 missing answer
    _obj(6, question="Null", answer=None),                                    # 7 answer null
    _obj(7, question="Q seven", answer=7),                                    # 8 good, numeric answer
    _line([1, 2]),                                                            # 9 not an object
    _obj(9, question=BIG_QUESTION, answer="1"),                               # 10 1 MB question
    b'{"index": 10, "question": "Q ten", "answer": "caf\xe9"}',               # 11 bad bytes in answer
    _obj(11, question="   ", answer="1"),                                     # 12 whitespace question
    _obj(12, question="Q empty list", answer=[]),                             # 13 answer []
]

JSON_GOOD = [("Q zero", ("0",)), ("Q two", ("1/2", "0.5")), ("Q seven", ("7",))]

JSON_REJECTED = [
    (2, ["UTF-8", "question"]),
    (4, ["empty question"]),
    (5, ["duplicate", "row 1"]),
    (6, ["missing answer"]),
    (7, ["missing answer"]),
    (9, ["list", "not an object"]),
    (10, ["over the limit"]),
    (11, ["UTF-8", "answer"]),
    (12, ["empty question"]),
    (13, ["missing answer"]),
]


@pytest.fixture
def json_file(tmp_path) -> Path:
    path = tmp_path / "evalset.json"
    path.write_bytes(b"[\n" + b",\n".join(JSON_ITEMS) + b"\n]\n")
    return path


@pytest.fixture
def json_loaded(json_file):
    return load_problems(ProblemsConfig(source=str(json_file)))


def test_json_list_good_rows_load_in_order(json_loaded):
    """Exactly the valid items of a JSON-list file load, in order, with their answers."""
    problems, _ = json_loaded
    assert [(p.question, p.answers) for p in problems] == JSON_GOOD
    assert all(p.source == "evalset" for p in problems)


def test_json_list_rejected_rows_are_exactly_the_bad_items(json_loaded):
    """The rejected items of a JSON-list file are exactly the bad ones, by 1-based position."""
    _, rejected = json_loaded
    assert [r.row for r in rejected] == [row for row, _ in JSON_REJECTED]


@pytest.mark.parametrize("row,words", JSON_REJECTED, ids=[f"item{r}" for r, _ in JSON_REJECTED])
def test_json_list_rejection_reason_says_what_is_wrong(json_loaded, row, words):
    """Each rejected JSON-list item carries a reason naming the problem."""
    _, rejected = json_loaded
    by_row = {r.row: r for r in rejected}
    assert row in by_row, f"item {row} was not rejected"
    for word in words:
        assert word in by_row[row].reason, f"item {row}: {word!r} not in {by_row[row].reason!r}"


def test_json_list_invalid_utf8_row_does_not_leak_surrogates(json_loaded):
    """Invalid UTF-8 inside one item rejects only that item; no loaded or rejected text holds surrogates."""
    problems, rejected = json_loaded
    assert not any("caf" in p.question for p in problems)
    for p in problems:
        p.question.encode("utf-8")
        "".join(p.answers).encode("utf-8")
    for r in rejected:
        r.preview.encode("utf-8")
        r.reason.encode("utf-8")


def test_json_object_with_data_list_is_accepted(tmp_path):
    """A JSON object wrapping the list under "data" loads like the bare list."""
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"data": [{"question": "Q", "answer": "1"}]}))
    problems, rejected = load_problems(ProblemsConfig(source=str(path)))
    assert [(p.question, p.answers) for p in problems] == [("Q", ("1",))]
    assert rejected == []


# ---------------------------------------------------------------- Parquet

def test_parquet_input_loads(tmp_path):
    """A Parquet file loads with its questions, answers, levels and subjects."""
    path = tmp_path / "probs.parquet"
    pq.write_table(pa.table({
        "problem": ["P one", "P two", ""],
        "answer": ["1", "2", "3"],
        "level": ["Level 1", "Level 5", "Level 2"],
        "type": ["Algebra", "Geometry", "Algebra"],
    }), path)
    problems, rejected = load_problems(ProblemsConfig(source=str(path), split="test"))
    assert [(p.question, p.answers, p.level, p.subject, p.split, p.source) for p in problems] == [
        ("P one", ("1",), 1, "Algebra", "test", "probs"),
        ("P two", ("2",), 5, "Geometry", "test", "probs"),
    ]
    assert [(r.row, r.reason) for r in rejected] == [(3, "empty question")]


def test_parquet_list_answers_load(tmp_path):
    """A Parquet list<string> answer column gives several accepted answers."""
    path = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"question": ["Q"], "answers": [["1/2", "0.5"]]}), path)
    problems, rejected = load_problems(ProblemsConfig(source=str(path)))
    assert [p.answers for p in problems] == [("1/2", "0.5")]
    assert rejected == []


# ---------------------------------------------------------------- unreadable files

def _missing(tmp_path):
    return tmp_path / "does_not_exist.jsonl"


def _directory(tmp_path):
    path = tmp_path / "a_directory.json"
    path.mkdir()
    return path


def _not_json(tmp_path):
    path = tmp_path / "not_json.json"
    path.write_text("this is { not json")
    return path


def _object_not_list(tmp_path):
    path = tmp_path / "object.json"
    path.write_text(json.dumps({"question": "Q", "answer": "1"}))
    return path


def _csv(tmp_path):
    path = tmp_path / "problems.csv"
    path.write_text("question,answer\nQ,1\n")
    return path


def _corrupt_parquet(tmp_path):
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(b"PAR1 this is not a parquet file at all PAR1")
    return path


@pytest.mark.parametrize("make,words", [
    (_missing, ["cannot read"]),
    (_directory, ["cannot read"]),
    (_not_json, ["not valid JSON"]),
    (_object_not_list, ["expected a JSON list", "dict"]),
    (_csv, ["unsupported format", ".csv"]),
    (_corrupt_parquet, ["not readable Parquet"]),
], ids=["missing", "directory", "not-json", "object-not-list", "csv", "corrupt-parquet"])
def test_unreadable_file_raises_problem_file_error_naming_path(tmp_path, make, words):
    """A file that cannot be read at all raises ProblemFileError naming the file and the cause."""
    path = make(tmp_path)
    with pytest.raises(ProblemFileError) as info:
        load_problems(ProblemsConfig(source=str(path)))
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message


# ---------------------------------------------------------------- config options and field parsing

def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_limit_keeps_first_n_valid_problems(tmp_path):
    """`limit` keeps the first N valid problems, skipping rejected rows in between."""
    path = _write_jsonl(tmp_path / "lim.jsonl", [
        {"question": "A", "answer": "1"},
        {"question": "bad"},
        {"question": "B", "answer": "2"},
        {"question": "C", "answer": "3"},
        {"question": "D", "answer": "4"},
    ])
    problems, _ = load_problems(ProblemsConfig(source=str(path), limit=2))
    assert [p.question for p in problems] == ["A", "B"]


def test_name_overrides_source(tmp_path):
    """`name` replaces the file stem as the source, and the problem id follows it."""
    path = _write_jsonl(tmp_path / "stem.jsonl", [{"question": "A", "answer": "1"}, {"question": "bad"}])
    problems, rejected = load_problems(ProblemsConfig(source=str(path), name="custom"))
    assert [p.source for p in problems] == ["custom"]
    assert problems[0].problem_id == problem_id("custom", "A")
    assert [r.source for r in rejected] == ["custom"]


def test_split_is_recorded(tmp_path):
    """`split` is recorded on every loaded problem."""
    path = _write_jsonl(tmp_path / "s.jsonl", [{"question": "A", "answer": "1"}, {"question": "B", "answer": "2"}])
    problems, _ = load_problems(ProblemsConfig(source=str(path), split="test"))
    assert [p.split for p in problems] == ["test", "test"]


@pytest.mark.parametrize("raw,expected", [(3, 3), ("Level 4", 4), ("Level ?", None)],
                         ids=["int", "level-string", "level-unknown"])
def test_level_parsing(tmp_path, raw, expected):
    """A level is read from an int or a "Level N" string; anything else gives None."""
    path = _write_jsonl(tmp_path / "lvl.jsonl", [{"question": "Q", "answer": "1", "level": raw}])
    problems, rejected = load_problems(ProblemsConfig(source=str(path)))
    assert rejected == []
    assert problems[0].level == expected


@pytest.mark.parametrize("key", ["type", "subject"])
def test_subject_from_type_or_subject(tmp_path, key):
    """The subject is read from either a "type" or a "subject" field."""
    path = _write_jsonl(tmp_path / "subj.jsonl", [{"question": "Q", "answer": "1", key: "Algebra"}])
    problems, _ = load_problems(ProblemsConfig(source=str(path)))
    assert problems[0].subject == "Algebra"


@pytest.mark.parametrize("key", ["question", "problem", "query"])
def test_question_keys_accepted(tmp_path, key):
    """The question may be given under "question", "problem" or "query"."""
    path = _write_jsonl(tmp_path / "keys.jsonl", [{key: "What is 2+2?", "answer": "4"}])
    problems, rejected = load_problems(ProblemsConfig(source=str(path)))
    assert rejected == []
    assert [(p.question, p.answers) for p in problems] == [("What is 2+2?", ("4",))]


# ---------------------------------------------------------------- identity and sharding

def test_problem_id_is_stable_and_depends_on_source():
    """The same source and question give the same id; another source or question gives another."""
    pid = problem_id("gsm8k", "What is 1+1?")
    assert pid == problem_id("gsm8k", "What is 1+1?")
    assert len(pid) == 16 and int(pid, 16) >= 0
    assert pid != problem_id("math", "What is 1+1?")
    assert pid != problem_id("gsm8k", "What is 1+2?")


@pytest.mark.parametrize("num_shards", [1, 2, 4, 7, 16])
def test_shard_of_is_in_range_and_stable(num_shards):
    """shard_of is within [0, num_shards) and gives the same shard every time."""
    pids = [problem_id("src", f"question {i}") for i in range(200)]
    shards = [shard_of(pid, num_shards) for pid in pids]
    assert all(0 <= s < num_shards for s in shards)
    assert shards == [shard_of(pid, num_shards) for pid in pids]
    if num_shards > 1:
        assert len(set(shards)) > 1  # 200 ids do not all hash to one shard


# ---------------------------------------------------------------- the mini world

def test_miniworld_gives_count_problems():
    """The miniworld source gives `count` valid problems and no rejections."""
    problems, rejected = load_problems(ProblemsConfig(source="miniworld", count=50, seed=1))
    assert len(problems) == 50
    assert rejected == []
    assert all(p.source == "miniworld" and p.subject == "arithmetic" for p in problems)


def test_miniworld_is_deterministic_per_seed():
    """The same seed gives the same problems; another seed gives different ones."""
    first = load_problems(ProblemsConfig(source="miniworld", count=50, seed=1))[0]
    again = load_problems(ProblemsConfig(source="miniworld", count=50, seed=1))[0]
    other = load_problems(ProblemsConfig(source="miniworld", count=50, seed=2))[0]
    assert first == again
    assert [p.question for p in first] != [p.question for p in other]


def test_miniworld_levels_within_bounds():
    """Miniworld levels lie within [min_level, max_level]."""
    problems, _ = load_problems(ProblemsConfig(source="miniworld", count=50, seed=1, min_level=2, max_level=3))
    assert {p.level for p in problems} <= {2, 3}
    assert all(p.level is not None for p in problems)


def test_miniworld_answers_are_integers():
    """Every miniworld problem has exactly one answer, an integer in canonical form."""
    problems, _ = load_problems(ProblemsConfig(source="miniworld", count=50, seed=1))
    for p in problems:
        assert len(p.answers) == 1
        assert str(int(p.answers[0])) == p.answers[0]


def test_miniworld_split_changes_problems():
    """Split "test" gives different problems from split "train" with the same seed."""
    train = load_problems(ProblemsConfig(source="miniworld", count=50, seed=1, split="train"))[0]
    test = load_problems(ProblemsConfig(source="miniworld", count=50, seed=1, split="test"))[0]
    assert all(p.split == "test" for p in test)
    assert {p.question for p in train} != {p.question for p in test}
    assert not {p.problem_id for p in train} & {p.problem_id for p in test}


# ---------------------------------------------------------------- real data in the shared folder



@needs_shared
def test_real_gsm8k_test_loads():
    """The rStar GSM8K eval file loads all 1319 problems with none rejected."""
    problems, rejected = load_problems(ProblemsConfig(source=str(SHARED_DATA / "eval" / "gsm8k_test.json")))
    assert len(problems) == 1319
    assert rejected == []
    assert all(len(p.answers) == 1 for p in problems)


@needs_shared
def test_real_math_test_keeps_list_answers():
    """The rStar MATH eval file loads, and its list answers keep several accepted answers."""
    path = SHARED_DATA / "eval" / "math_test.json"
    problems, rejected = load_problems(ProblemsConfig(source=str(path)))
    assert len(problems) + len(rejected) == 5000
    assert rejected == []
    raw = json.loads(path.read_text(encoding="utf-8"))
    list_questions = {item["question"]: item["answer"] for item in raw if isinstance(item["answer"], list)}
    assert list_questions, "expected some items with a list of answers"
    by_question = {p.question: p for p in problems}
    for question, answers in list_questions.items():
        assert len(by_question[question].answers) > 1
        assert by_question[question].answers == tuple(a.strip() for a in answers)


@needs_shared
def test_real_gsm8k_train_jsonl_loads_every_row():
    """The raw GSM8K train JSONL (worked answers ending in '#### N') loads all 7473 rows with final answers."""
    path = SHARED_DATA / "train" / "gsm8k_train.jsonl"
    problems, rejected = load_problems(ProblemsConfig(source=str(path)))
    assert len(problems) == 7473 and rejected == []
    assert all("####" not in p.answers[0] and "," not in p.answers[0] for p in problems)
    assert problems[0].answers == ("72",)


# ---------------------------------------------------------------- writing shards to the warehouse

@pytest.fixture(params=["jsonl", "json"])
def mixed_file(request, jsonl_file, json_file) -> Path:
    return jsonl_file if request.param == "jsonl" else json_file


def test_shards_hold_every_valid_problem_exactly_once(tmp_path, mixed_file):
    """With all 4 shards written, every valid problem is in exactly one shard file."""
    config = ProblemsConfig(source=str(mixed_file))
    problems, _ = load_problems(config)
    store = Warehouse(tmp_path / "store")
    write_problem_shards(store, config, shard_keys(4), 4)
    ids = []
    for key in shard_keys(4):
        assert store.path("problems", key).exists()
        ids += store.read("problems", key).column("problem_id").to_pylist()
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(p.problem_id for p in problems)


def test_shard_rows_round_trip(tmp_path, mixed_file):
    """Problems read back from the warehouse equal the loaded ones, field by field."""
    config = ProblemsConfig(source=str(mixed_file))
    problems, _ = load_problems(config)
    store = Warehouse(tmp_path / "store")
    write_problem_shards(store, config, shard_keys(4), 4)
    rows = {r["problem_id"]: r for r in store.read("problems").to_pylist()}
    for p in problems:
        r = rows[p.problem_id]
        assert (r["source"], r["split"], r["question"], tuple(r["answers"]), r["level"], r["subject"]) == (
            p.source, p.split, p.question, p.answers, p.level, p.subject)


def test_shard_column_matches_file(tmp_path, mixed_file):
    """The shard column of every written row names the file it is in, and the hash puts it there."""
    config = ProblemsConfig(source=str(mixed_file))
    store = Warehouse(tmp_path / "store")
    keys = shard_keys(4)
    write_problem_shards(store, config, keys, 4)
    for key in keys:
        table = store.read("problems", key)
        assert set(table.column("shard").to_pylist()) <= {key}
        for pid in table.column("problem_id").to_pylist():
            assert keys[shard_of(pid, 4)] == key
        assert set(store.read("rejected_problems", key).column("shard").to_pylist()) <= {key}


def test_shards_hold_every_rejected_row_exactly_once(tmp_path, mixed_file):
    """With all 4 shards written, every rejected row is in exactly one rejected_problems file."""
    config = ProblemsConfig(source=str(mixed_file))
    _, rejected = load_problems(config)
    store = Warehouse(tmp_path / "store")
    result = write_problem_shards(store, config, shard_keys(4), 4)
    rows = []
    for key in shard_keys(4):
        assert store.path("rejected_problems", key).exists()
        rows += [(r["row"], r["reason"]) for r in store.read("rejected_problems", key).to_pylist()]
    assert len(rows) == len(set(rows))
    assert sorted(rows) == sorted((r.row, r.reason) for r in rejected)
    assert result.total_rejected == len(rejected)
    assert sorted(r.row for r in result.rejected) == sorted(r.row for r in rejected)


def test_writing_one_shard_writes_only_that_file(tmp_path, mixed_file):
    """Writing a single shard creates only that shard's problems and rejected_problems files."""
    config = ProblemsConfig(source=str(mixed_file))
    problems, _ = load_problems(config)
    store = Warehouse(tmp_path / "store")
    keys = shard_keys(4)
    result = write_problem_shards(store, config, [keys[1]], 4)
    for table in ("problems", "rejected_problems"):
        files = sorted(p.name for p in (store.root / table).glob("*.parquet"))
        assert files == [f"{keys[1]}.parquet"]
    expected = [p.problem_id for p in problems if shard_of(p.problem_id, 4) == 1]
    assert sorted(store.read("problems").column("problem_id").to_pylist()) == sorted(expected)
    assert result.problems == {keys[1]: len(expected)}
    assert result.total_valid == len(problems)


# ---------------------------------------------------------------- regressions

def test_unicode_digit_level_does_not_crash_load(tmp_path):
    """A level like "Level \u00b2" (isdigit but not int-parsable) gives None instead of crashing the load."""
    path = _write_jsonl(tmp_path / "sup.jsonl", [{"question": "Q", "answer": "1", "level": "Level \u00b2"}])
    problems, _ = load_problems(ProblemsConfig(source=str(path)))
    assert problems[0].level is None


def test_lone_surrogate_question_is_rejected_not_crashing_write(tmp_path):
    """A question holding a lone surrogate (JSON escape \\ud800) is rejected, so writing shards succeeds."""
    path = tmp_path / "sur.jsonl"
    path.write_text('{"question": "x\\ud800y", "answer": "1"}\n{"question": "ok", "answer": "2"}\n')
    config = ProblemsConfig(source=str(path))
    store = Warehouse(tmp_path / "store")
    write_problem_shards(store, config, shard_keys(2), 2)
    assert store.read("problems").column("question").to_pylist() == ["ok"]


def test_byte_order_mark_is_ignored(tmp_path):
    """Files saved with a UTF-8 byte-order mark load their first row."""
    jsonl, js = tmp_path / "bom.jsonl", tmp_path / "bom.json"
    jsonl.write_bytes(b"\xef\xbb\xbf" + b'{"question": "Q1", "answer": "1"}\n')
    js.write_bytes(b"\xef\xbb\xbf" + b'[{"question": "Q2", "answer": "2"}]')
    for path, question in ((jsonl, "Q1"), (js, "Q2")):
        problems, rejected = load_problems(ProblemsConfig(source=str(path)))
        assert [p.question for p in problems] == [question] and rejected == []


def test_non_text_question_reason_names_the_type(tmp_path):
    """A numeric question is rejected as not text, not as empty."""
    path = _write_jsonl(tmp_path / "num.jsonl", [{"question": 5, "answer": "1"}])
    _, rejected = load_problems(ProblemsConfig(source=str(path)))
    assert "not text" in rejected[0].reason


# ---------------------------------------------------------------- Hugging Face datasets, MATH solutions, repeats

def _hub_layout(root: Path) -> Path:
    """A dataset folder laid out like a hub dataset repo (data/<split>-*.parquet), loaded by the real
    `datasets.load_dataset` without network."""
    (root / "data").mkdir(parents=True)
    pq.write_table(pa.table({"problem": ["What is 2+2?", "Half of 3?"], "answer": ["4", "\\frac{3}{2}"],
                             "solution": ["", ""]}), root / "data" / "test-00000-of-00001.parquet")
    pq.write_table(pa.table({"problem": ["What is 1+1?"], "answer": pa.array([None], pa.string()),
                             "solution": ["So it is $\\boxed{2}$."]}), root / "data" / "train-00000-of-00001.parquet")
    return root


def test_hf_dataset_folder_loads_by_split(tmp_path):
    root = _hub_layout(tmp_path / "my_math")
    test, rejected = load_problems(ProblemsConfig(source=f"hf:{root}@test", split="test"))
    assert [(p.question, p.answers, p.source) for p in test] == [
        ("What is 2+2?", ("4",), "my_math"), ("Half of 3?", ("\\frac{3}{2}",), "my_math")]
    assert rejected == []
    train, _ = load_problems(ProblemsConfig(source=f"hf:{root}"))  # the split defaults to the config's
    assert [(p.question, p.answers) for p in train] == [("What is 1+1?", ("2",))]


def test_hf_dataset_saved_to_disk_loads(tmp_path):
    import datasets

    data = datasets.DatasetDict({"test": datasets.Dataset.from_dict({"question": ["Q1", ""], "answer": ["1", "2"]})})
    data.save_to_disk(str(tmp_path / "saved"))
    problems, rejected = load_problems(ProblemsConfig(source=f"hf:{tmp_path / 'saved'}@test", name="saved"))
    assert [p.question for p in problems] == ["Q1"]
    assert [(r.row, r.reason) for r in rejected] == [(2, "empty question")]


@pytest.mark.parametrize("spec, words", [
    ("hf:", "expected hf:NAME"),
    ("hf:{tmp}/nothing_here@test", "cannot load Hugging Face dataset"),
    ("hf:{layout}@validation", "split 'validation'"),
])
def test_hf_sources_that_cannot_load_name_themselves(tmp_path, spec, words):
    layout = _hub_layout(tmp_path / "layout")
    with pytest.raises(ProblemFileError, match=words):
        load_problems(ProblemsConfig(source=spec.format(tmp=tmp_path, layout=layout)))


def test_hf_spec_parsing():
    assert parse_hf_source("hf:openai/gsm8k:main@test", "train") == ("openai/gsm8k", "main", "test")
    assert parse_hf_source("hf:HuggingFaceH4/MATH-500", "test") == ("HuggingFaceH4/MATH-500", None, "test")


def test_math_solution_gives_its_boxed_answer_and_an_unboxed_one_is_rejected(tmp_path):
    path = _write_jsonl(tmp_path / "math.jsonl", [
        {"problem": "A", "solution": "... so $x = \\boxed{\\frac{1}{2}}$."},
        {"problem": "B", "solution": "no box here"},
    ])
    problems, rejected = load_problems(ProblemsConfig(source=str(path)))
    assert [p.answers for p in problems] == [("\\frac{1}{2}",)]
    assert [(r.row, r.reason) for r in rejected] == [(2, "missing answer")]


def test_keep_duplicates_keeps_a_repeated_question_under_its_own_id(tmp_path):
    rows = [{"question": "Same?", "answer": "1"}, {"question": "Same?", "answer": "2"}]
    path = _write_jsonl(tmp_path / "dups.jsonl", rows)
    kept, rejected = load_problems(ProblemsConfig(source=str(path), keep_duplicates=True))
    assert [p.answers for p in kept] == [("1",), ("2",)] and rejected == []
    assert kept[0].problem_id == problem_id("dups", "Same?") != kept[1].problem_id
    assert shard_of(kept[1].problem_id, 4) in range(4)
    dropped, rejected = load_problems(ProblemsConfig(source=str(path)))
    assert len(dropped) == 1 and rejected[0].reason == "duplicate problem: same question as row 1"
