"""Problem sets: loading, validating and identifying the problems a round searches.

Sources: the mini world's generator, a file in the reference's eval format (a JSON list of
{index, question, answer}), JSON Lines, or Parquet, or a Hugging Face dataset (`hf:NAME[:CONFIG][@SPLIT]`,
NAME a hub id or a local dataset folder; needs hub access or a local copy). Field names
`question`/`problem`/`query` and `answer`/`answers` are accepted; an answer may be a string, a number
or a list of accepted answers; a GSM8K-style worked answer ("...\n#### 72") counts as its final line;
with no answer field, the last `\boxed{}` of a `solution` field is the answer (MATH). A reference cut
off in its source data gets its missing closing braces back (`grading.normalize.close_braces`).
Every bad row is rejected with its row number and reason and the good rows go on; a source that
cannot be read at all raises `ProblemFileError` naming it. Sharding is a stable hash of
the problem id, so a problem keeps its shard whatever else is in the set.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from rstar_pipeline.grading.extract import extract_boxed
from rstar_pipeline.grading.normalize import close_braces

QUESTION_KEYS = ("question", "problem", "query")
ANSWER_KEYS = ("answer", "answers")
HF_PREFIX = "hf:"


@dataclass(frozen=True)
class Problem:
    problem_id: str
    source: str
    split: str
    question: str
    answers: tuple[str, ...]
    level: int | None = None
    subject: str | None = None


@dataclass(frozen=True)
class Rejected:
    source: str
    row: int  # 1-based position in the file (the line number for JSON Lines)
    reason: str
    problem_id: str | None = None
    preview: str = ""


@dataclass(frozen=True)
class ProblemsConfig:
    source: str = field(default="miniworld", metadata={
        "help": "'miniworld', a path to .json, .jsonl or .parquet, or hf:NAME[:CONFIG][@SPLIT] (Hugging Face dataset)"})
    name: str = field(default="", metadata={"help": "source name recorded with the rows; default: the file or dataset name"})
    split: str = field(default="train", metadata={"help": "split name recorded with the rows"})
    count: int = field(default=240, metadata={"help": "mini world: number of problems to generate"})
    seed: int = field(default=0, metadata={"help": "mini world: generator seed"})
    min_level: int = field(default=1, metadata={"help": "mini world: fewest operations per problem"})
    max_level: int = field(default=6, metadata={"help": "mini world: most operations per problem"})
    limit: int = field(default=0, metadata={"help": "keep only the first N valid problems; 0 = all"})
    max_question_chars: int = field(default=20_000, metadata={"help": "longer questions are rejected"})
    max_answer_chars: int = field(default=1_000, metadata={"help": "longer answers are rejected"})
    keep_duplicates: bool = field(default=False, metadata={
        "help": "keep a repeated question as its own problem (id from question and row), as benchmarks are "
                "scored; otherwise it is rejected naming the first row"})

    def __post_init__(self):
        if not 1 <= self.min_level <= self.max_level:
            raise ValueError("problems: need 1 <= min_level <= max_level")
        if self.count < 0 or self.limit < 0:
            raise ValueError("problems: count and limit must be >= 0")


class ProblemFileError(Exception):
    """The problem file as a whole cannot be read; the message names the file."""


def problem_id(source: str, question: str) -> str:
    return hashlib.sha1(f"{source}\x00{question}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


def shard_of(pid: str, num_shards: int) -> int:
    return int(pid, 16) % num_shards


def load_problems(config: ProblemsConfig) -> tuple[list[Problem], list[Rejected]]:
    """Valid problems in file order, and every rejected row with its reason."""
    source = source_name(config)
    if config.source == "miniworld":
        raw_rows = _miniworld_rows(config)
    elif config.source.startswith(HF_PREFIX):
        raw_rows = _hf_rows(*parse_hf_source(config.source, config.split))
    else:
        raw_rows = _file_rows(Path(config.source).expanduser())
    problems: list[Problem] = []
    rejected: list[Rejected] = []
    first_row: dict[str, int] = {}
    for row_no, raw in raw_rows:
        result = _validate(raw, row_no, source, config, first_row)
        if isinstance(result, Rejected):
            rejected.append(result)
        elif not config.limit or len(problems) < config.limit:
            problems.append(result)
    return problems, rejected


def source_name(config: ProblemsConfig) -> str:
    """The name recorded with the rows: `name`, else 'miniworld', the dataset's or the file's own name."""
    if config.name or config.source == "miniworld":
        return config.name or "miniworld"
    if config.source.startswith(HF_PREFIX):
        return Path(parse_hf_source(config.source, config.split)[0]).name
    return Path(config.source).expanduser().stem


def _miniworld_rows(config: ProblemsConfig) -> Iterator[tuple[int, Any]]:
    from rstar_pipeline.miniworld.problems import generate

    for i, p in enumerate(generate(config.count, f"{config.split}:{config.seed}", config.min_level, config.max_level)):
        yield i + 1, {"question": p.question, "answer": str(p.answer), "level": p.level, "subject": "arithmetic"}


def parse_hf_source(spec: str, default_split: str) -> tuple[str, str | None, str]:
    """'hf:openai/gsm8k:main@test' -> ('openai/gsm8k', 'main', 'test'); split defaults to `default_split`."""
    rest, _, split = spec.removeprefix(HF_PREFIX).partition("@")
    name, _, subset = rest.partition(":")
    if not name:
        raise ProblemFileError(f"{spec!r}: expected hf:NAME[:CONFIG][@SPLIT], e.g. hf:openai/gsm8k:main@test")
    return name, subset or None, split or default_split


def _hf_rows(name: str, subset: str | None, split: str) -> Iterator[tuple[int, Any]]:
    """Rows of a Hugging Face dataset split: from the hub (or its local cache), a local dataset folder,
    or a folder written by `Dataset.save_to_disk`."""
    import datasets  # slow to import; a dependency of trl

    what = f"Hugging Face dataset {name!r}" + (f" (config {subset!r})" if subset else "") + f", split {split!r}"
    try:
        local = Path(name).expanduser()
        if (local / "dataset_dict.json").exists() or (local / "state.json").exists():
            data = datasets.load_from_disk(str(local))
            data = data[split] if isinstance(data, datasets.DatasetDict) else data
        else:
            data = datasets.load_dataset(name, subset, split=split)
    except Exception as e:  # hub, network, missing split and format errors all land here
        raise ProblemFileError(f"cannot load {what}: {type(e).__name__}: {e}") from e
    return ((i + 1, row) for i, row in enumerate(data))


def _file_rows(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ProblemFileError(f"cannot read problem file {path}: {e.strerror or e}") from e
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _jsonl_rows(path, data)
    if suffix == ".json":
        return _json_rows(path, data)
    if suffix == ".parquet":
        return _parquet_rows(path)
    raise ProblemFileError(f"problem file {path}: unsupported format {suffix!r} (use .json, .jsonl or .parquet)")


def _json_rows(path: Path, data: bytes) -> Iterator[tuple[int, Any]]:
    # surrogateescape keeps going past invalid UTF-8; the row that holds it is rejected below
    try:
        rows = json.loads(data.decode("utf-8-sig", "surrogateescape"))
    except json.JSONDecodeError as e:
        raise ProblemFileError(f"problem file {path} is not valid JSON: {e}") from e
    if isinstance(rows, dict) and isinstance(rows.get("data"), list):
        rows = rows["data"]
    if not isinstance(rows, list):
        raise ProblemFileError(f"problem file {path}: expected a JSON list of objects, got {type(rows).__name__}")
    return ((i + 1, row) for i, row in enumerate(rows))


def _jsonl_rows(path: Path, data: bytes) -> Iterator[tuple[int, Any]]:
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark is not part of the first row
    for i, line in enumerate(data.split(b"\n")):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            yield i + 1, _BadRow(f"invalid UTF-8 at byte {e.start} of the line", line[:120])
            continue
        try:
            yield i + 1, json.loads(text)
        except json.JSONDecodeError as e:
            yield i + 1, _BadRow(f"invalid JSON: {e.msg} at column {e.colno}", line[:120])


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several types for a broken file
        raise ProblemFileError(f"problem file {path} is not readable Parquet: {e}") from e
    return ((i + 1, row) for i, row in enumerate(rows))


@dataclass(frozen=True)
class _BadRow:
    reason: str
    raw: bytes


def _validate(raw: Any, row_no: int, source: str, config: ProblemsConfig,
              first_row: dict[str, int]) -> Problem | Rejected:
    def reject(reason: str, pid: str | None = None) -> Rejected:
        return Rejected(source, row_no, reason, pid, _preview(raw))

    if isinstance(raw, _BadRow):
        return reject(raw.reason)
    if not isinstance(raw, dict):
        return reject(f"row is a JSON {type(raw).__name__}, not an object")
    question = next((raw[k] for k in QUESTION_KEYS if k in raw), None)
    if question is None:
        return reject(f"missing question (expected one of {', '.join(QUESTION_KEYS)})")
    if not isinstance(question, str):
        return reject(f"question is a JSON {type(question).__name__}, not text")
    if not question.strip():
        return reject("empty question")
    bad_field = next((k for k, v in raw.items() if isinstance(v, str) and _not_utf8(v)), None)
    if bad_field:
        return reject(f"field {bad_field!r} is not valid UTF-8 text (undecodable bytes or lone surrogates)")
    if len(question) > config.max_question_chars:
        return reject(f"question is {len(question):,} characters, over the limit of {config.max_question_chars:,}")
    answer = next((raw[k] for k in ANSWER_KEYS if raw.get(k) is not None), None)
    answers = _answers(answer if answer is not None else _boxed_solution(raw))
    if not answers:
        return reject("missing answer")
    if _not_utf8("".join(answers)):
        return reject("answer is not valid UTF-8 text (undecodable bytes or lone surrogates)")
    if max(len(a) for a in answers) > config.max_answer_chars:
        return reject(f"answer is over the limit of {config.max_answer_chars:,} characters")
    pid = problem_id(source, question)
    if pid in first_row and config.keep_duplicates:
        pid = problem_id(source, f"{question}\x00row {row_no}")
    elif pid in first_row:
        return reject(f"duplicate problem: same question as row {first_row[pid]}", pid)
    first_row[pid] = row_no
    return Problem(pid, source, config.split, question, answers, _level(raw.get("level")),
                   _subject(raw.get("subject", raw.get("type"))))


def _answers(value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, (int, float)):
            v = str(v)
        if isinstance(v, str) and v.strip():
            out.append(close_braces(_final_line(v.strip())))
    return tuple(out)


def _boxed_solution(raw: dict) -> str | None:
    solution = raw.get("solution")
    return extract_boxed(solution) if isinstance(solution, str) else None


def _final_line(answer: str) -> str:
    """GSM8K worked answers end with '#### 72': the final answer is what follows the marker."""
    head, marker, tail = answer.rpartition("\n#### ")
    return tail.strip().replace(",", "") if marker and tail.strip() else answer


def _level(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.replace("Level", "").strip())
        except ValueError:
            return None
    return None


def _subject(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _not_utf8(text: str) -> bool:
    """Undecodable bytes (kept as \\udcXX by surrogateescape) or JSON-escaped lone surrogates."""
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _preview(raw: Any, n: int = 120) -> str:
    if isinstance(raw, _BadRow):
        return raw.raw.decode("utf-8", "backslashreplace")[:n]
    text = json.dumps(raw, ensure_ascii=False, default=str) if not isinstance(raw, str) else raw
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:n] + ("..." if len(text) > n else "")
