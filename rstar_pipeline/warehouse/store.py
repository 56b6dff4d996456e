"""Parquet storage of the pipeline's tables: one file per (table, round, shard), written atomically.

Layout under the store root:  <table>/shard_000.parquet  (problems, rejected_problems)
                              <table>/round_1/shard_000.parquet  (round tables)
A file is written to a temporary name in the same directory, fsynced, then renamed over the old
one, so a killed writer leaves either the old file or the new one, never a torn one. Each file
carries a JSON `rstar` entry in its Parquet metadata: the config and identity that produced it.
Parquet is the source of truth; DuckDB views over it are in `views`.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rstar_pipeline.warehouse.schemas import ROUND_TABLES, TABLES

META_KEY = b"rstar"


class Warehouse:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    def path(self, table: str, shard: str, round: int | None = None) -> Path:
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
        if (table in ROUND_TABLES) != (round is not None):
            raise ValueError(f"table {table} {'needs' if table in ROUND_TABLES else 'takes no'} round")
        folder = self.root / table / (f"round_{round}" if round is not None else "")
        return folder / f"{shard}.parquet"

    def write(self, table: str, data: pa.Table, shard: str, round: int | None = None,
              meta: dict | None = None) -> Path:
        """Write one partition atomically, with exactly the table's schema and `meta` attached."""
        path = self.path(table, shard, round)
        data = conform(data, TABLES[table]).replace_schema_metadata({META_KEY: json.dumps(meta or {}, default=str)})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            pq.write_table(data, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(path.parent)
        return path

    def read(self, table: str, shard: str | None = None, round: int | None = None) -> pa.Table:
        """One partition, or every partition of the table (of one round) when `shard` is None."""
        if shard is not None:
            path = self.path(table, shard, round)
            files = [path] if path.exists() else []
        else:
            folder = self.path(table, "x", round).parent
            files = sorted(folder.glob("*.parquet")) if folder.exists() else []
        if not files:
            return TABLES[table].empty_table()
        return pa.concat_tables([conform(pq.read_table(f), TABLES[table]) for f in files])

    def meta(self, table: str, shard: str, round: int | None = None) -> dict | None:
        """The `rstar` metadata of a partition, or None if it does not exist."""
        path = self.path(table, shard, round)
        if not path.exists():
            return None
        raw = pq.read_schema(path).metadata or {}
        return json.loads(raw.get(META_KEY, b"{}"))

    def delete(self, table: str, shard: str, round: int | None = None) -> None:
        self.path(table, shard, round).unlink(missing_ok=True)


def conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """`data` with the schema's columns in order and types; a missing column is an error."""
    missing = [name for name in schema.names if name not in data.column_names]
    if missing:
        raise ValueError(f"table is missing columns {missing}")
    return data.select(schema.names).cast(schema)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
