"""DuckDB views over the Parquet store, and the named queries in `warehouse/queries/*.sql`.

Views live in an in-memory DuckDB connection made per use, so any number of readers and
writers never contend for a database lock. `view_statements` prints the same views for the
DuckDB CLI or any other DuckDB client. A table with no files yet is an empty view of its schema.
Besides the tables, `search_shards` lists every written tree_nodes partition with the config and
statistics recorded in its Parquet metadata.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow as pa

from rstar_pipeline.paths import QUERIES_DIR
from rstar_pipeline.warehouse.schemas import ROUND_TABLES, TABLES
from rstar_pipeline.warehouse.store import Warehouse



def _glob(store: Warehouse, table: str) -> str:
    """The table's files as the body of a SQL string literal (quotes doubled)."""
    path = str(store.root / table / ("*/*.parquet" if table in ROUND_TABLES else "*.parquet"))
    return path.replace("'", "''")


def _has_files(store: Warehouse, table: str) -> bool:
    return any(Path(store.root / table).glob("**/*.parquet"))


def view_statements(store: Warehouse) -> list[str]:
    """CREATE VIEW statements for every table that has files (absolute paths, any DuckDB client)."""
    out = []
    for table in TABLES:
        if _has_files(store, table):
            out.append(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet('{_glob(store, table)}');")
    if _has_files(store, "tree_nodes"):
        out.append(_SEARCH_SHARDS.format(glob=_glob(store, "tree_nodes")))
    return out


def connect(store: Warehouse) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view per table (empty where nothing is written yet)."""
    con = duckdb.connect(":memory:")
    for statement in view_statements(store):
        con.execute(statement)
    for table, schema in TABLES.items():
        if not _has_files(store, table):
            con.register(f"_empty_{table}", schema.empty_table())
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM _empty_{table}")
    if not _has_files(store, "tree_nodes"):
        con.execute(_EMPTY_SEARCH_SHARDS)
    return con


def query(store: Warehouse, sql: str, params: dict | None = None) -> pa.Table:
    con = connect(store)
    try:
        return con.sql(sql, params=params or None).to_arrow_table()
    finally:
        con.close()


def named_queries(folder: Path = QUERIES_DIR) -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.sql"))}


def query_params(sql: str) -> list[str]:
    """Named parameters ($name) a query expects."""
    return sorted(set(re.findall(r"\$([A-Za-z_]\w*)", sql)))


_EMPTY_SEARCH_SHARDS = """CREATE VIEW search_shards AS
SELECT NULL::VARCHAR AS file, NULL::INTEGER AS round, NULL::VARCHAR AS shard, NULL::VARCHAR AS identity,
       NULL::INTEGER AS problems, NULL::INTEGER AS nodes, NULL::DOUBLE AS wall_s, NULL::JSON AS config
WHERE false"""

_SEARCH_SHARDS = """CREATE OR REPLACE VIEW search_shards AS
WITH kv AS (
    SELECT file_name, CASE WHEN decode(key) = 'rstar' THEN decode(value) END AS meta
    FROM parquet_kv_metadata('{glob}')
)
SELECT file_name AS file,
       CAST(json_extract(meta, '$.round') AS INTEGER) AS round,
       json_extract_string(meta, '$.shard') AS shard,
       json_extract_string(meta, '$.identity') AS identity,
       CAST(json_extract(meta, '$.stats.problems') AS INTEGER) AS problems,
       CAST(json_extract(meta, '$.stats.nodes') AS INTEGER) AS nodes,
       CAST(json_extract(meta, '$.stats.wall_s') AS DOUBLE) AS wall_s,
       json_extract(meta, '$.config') AS config
FROM kv WHERE meta IS NOT NULL;"""
