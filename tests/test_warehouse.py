"""Tests of the Parquet warehouse: store.py (Warehouse, conform), schemas.py and views.py."""

from __future__ import annotations

import json
import os

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rstar_pipeline.paths import QUERIES_DIR
from rstar_pipeline.warehouse.schemas import PROBLEMS, ROUND_TABLES, TABLES, TREE_NODES
from rstar_pipeline.warehouse.store import META_KEY, Warehouse, conform
from rstar_pipeline.warehouse.views import connect, named_queries, query, query_params, view_statements

SEARCH_META = {"round": 1, "shard": "shard_000", "identity": "abc", "config": {"search": {"rollouts": 8}},
               "stats": {"problems": 2, "nodes": 3, "wall_s": 0.5}}


# --- row helpers ---------------------------------------------------------------------------------


def tree_node(**overrides) -> dict:
    """One tree_nodes row with every TREE_NODES column; defaults describe an unvisited root."""
    row = {
        "round": 1, "shard": "shard_000", "problem_id": "p1", "node_id": 0, "parent_id": None, "depth": 0,
        "kind": "root", "step_text": "", "code": None, "exec_status": None, "exec_output": None,
        "terminal_kind": "none", "final_answer": None, "is_correct": None, "visits": 0, "value_sum": 0.0,
        "q_value": 0.0, "ppm_score": None, "consecutive_errors": 0, "created_rollout": 0, "n_children": 0,
        "mc_samples": None, "mc_correct": None,
    }
    assert set(row) == set(TREE_NODES.names)
    row.update(overrides)
    return row


def tree_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=TREE_NODES)


def problem(problem_id: str, level: int = 1, shard: str = "shard_000") -> dict:
    return {"problem_id": problem_id, "source": "test", "split": "train", "question": f"q {problem_id}",
            "answers": ["1"], "level": level, "subject": "algebra", "shard": shard}


def problems_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=PROBLEMS)


def small_tree(round: int = 1, shard: str = "shard_000") -> pa.Table:
    """Three nodes over two problems: a root with one code child, and a second root."""
    return tree_table([
        tree_node(round=round, shard=shard, problem_id="p1"),
        tree_node(round=round, shard=shard, problem_id="p1", node_id=1, parent_id=0, depth=1, kind="code",
                  code="print(1)", exec_status="ok", exec_output="1"),
        tree_node(round=round, shard=shard, problem_id="p2"),
    ])


@pytest.fixture
def store(tmp_path) -> Warehouse:
    return Warehouse(tmp_path / "store")


# --- paths ---------------------------------------------------------------------------------------


def test_path_layout(store):
    """Round tables live under round_<r>/, other tables directly under the table folder."""
    assert store.path("tree_nodes", "shard_003", round=2) == store.root / "tree_nodes" / "round_2" / "shard_003.parquet"
    assert store.path("problems", "shard_000") == store.root / "problems" / "shard_000.parquet"
    for table in ROUND_TABLES:
        assert store.path(table, "s", round=1).parent == store.root / table / "round_1"
    for table in set(TABLES) - set(ROUND_TABLES):
        assert store.path(table, "s").parent == store.root / table


def test_root_is_absolute(tmp_path, monkeypatch):
    """A relative root is resolved to an absolute path."""
    monkeypatch.chdir(tmp_path)
    store = Warehouse("rel")
    assert store.root.is_absolute()
    assert store.root == (tmp_path / "rel").resolve()


def test_write_returns_the_layout_path(store):
    """write() returns the partition path and creates the file there."""
    path = store.write("tree_nodes", small_tree(), "shard_000", round=1)
    assert path == store.root / "tree_nodes" / "round_1" / "shard_000.parquet"
    assert path.is_file()
    path = store.write("problems", problems_table([problem("p1")]), "shard_000")
    assert path == store.root / "problems" / "shard_000.parquet"
    assert path.is_file()


def test_round_table_needs_round(store):
    """A round table without a round raises ValueError, in path, write and read."""
    with pytest.raises(ValueError):
        store.path("tree_nodes", "shard_000")
    with pytest.raises(ValueError):
        store.write("tree_nodes", small_tree(), "shard_000")
    with pytest.raises(ValueError):
        store.read("trajectories", "shard_000")


def test_non_round_table_takes_no_round(store):
    """A non-round table given a round raises ValueError."""
    with pytest.raises(ValueError):
        store.path("problems", "shard_000", round=1)
    with pytest.raises(ValueError):
        store.write("problems", problems_table([problem("p1")]), "shard_000", round=1)


def test_unknown_table_raises_key_error(store):
    """An unknown table name raises KeyError everywhere."""
    with pytest.raises(KeyError):
        store.path("nope", "shard_000")
    with pytest.raises(KeyError):
        store.write("nope", problems_table([problem("p1")]), "shard_000")
    with pytest.raises(KeyError):
        store.read("nope")
    with pytest.raises(KeyError):
        store.meta("nope", "shard_000")


def test_missing_column_raises_value_error_naming_it(store):
    """Writing a table without one of the schema's columns raises ValueError naming the column."""
    data = problems_table([problem("p1")]).drop_columns(["subject"])
    with pytest.raises(ValueError, match="subject"):
        store.write("problems", data, "shard_000")
    assert not store.path("problems", "shard_000").exists()


# --- write / read round trips --------------------------------------------------------------------


def test_round_trip_exact_schema_order_and_types(store):
    """Columns given out of order and with wider types come back in schema order with schema types."""
    rows = [problem("p1", level=3), problem("p2", level=5)]
    columns = list(reversed(PROBLEMS.names))
    data = pa.table({name: [row[name] for row in rows] for name in columns})  # level inferred as int64
    data = data.append_column("extra", pa.array([1, 2]))
    assert data.schema.field("level").type == pa.int64()
    store.write("problems", data, "shard_000")
    back = store.read("problems", "shard_000")
    assert back.schema.equals(PROBLEMS)
    assert back.column_names == PROBLEMS.names
    assert back.to_pylist() == rows
    # the file itself holds exactly the schema (plus the rstar metadata)
    on_disk = pq.read_schema(store.path("problems", "shard_000"))
    assert on_disk.equals(PROBLEMS)
    assert META_KEY in on_disk.metadata


def test_round_trip_tree_nodes(store):
    """tree_nodes rows with nulls round-trip unchanged."""
    data = small_tree()
    store.write("tree_nodes", data, "shard_000", round=1)
    back = store.read("tree_nodes", "shard_000", round=1)
    assert back.schema.equals(TREE_NODES)
    assert back.to_pylist() == data.to_pylist()


def test_conform_orders_and_casts():
    """conform selects the schema's columns in order and casts them to its types."""
    data = pa.table({"level": pa.array([2], pa.int64()), **{n: [problem("p")[n]] for n in PROBLEMS.names if n != "level"}})
    out = conform(data, PROBLEMS)
    assert out.schema.equals(PROBLEMS)
    assert out.column("level").to_pylist() == [2]
    with pytest.raises(ValueError, match="level"):
        conform(data.drop_columns(["level"]), PROBLEMS)


def test_meta_round_trips(store):
    """The meta dict written with a partition comes back from meta()."""
    store.write("tree_nodes", small_tree(), "shard_000", round=1, meta=SEARCH_META)
    assert store.meta("tree_nodes", "shard_000", round=1) == SEARCH_META
    raw = pq.read_schema(store.path("tree_nodes", "shard_000", round=1)).metadata[META_KEY]
    assert json.loads(raw) == SEARCH_META


def test_meta_defaults_and_missing(store):
    """Without meta a partition carries {}; a missing partition has meta None."""
    store.write("problems", problems_table([problem("p1")]), "shard_000")
    assert store.meta("problems", "shard_000") == {}
    assert store.meta("problems", "shard_001") is None
    assert store.meta("tree_nodes", "shard_000", round=1) is None


def test_no_temporary_files_remain(store):
    """After writes and an overwrite, the folder holds only the final Parquet files."""
    store.write("tree_nodes", small_tree(), "shard_000", round=1)
    store.write("tree_nodes", small_tree(shard="shard_001"), "shard_001", round=1)
    store.write("tree_nodes", small_tree(), "shard_000", round=1)
    folder = store.root / "tree_nodes" / "round_1"
    assert sorted(p.name for p in folder.iterdir()) == ["shard_000.parquet", "shard_001.parquet"]


def test_failed_write_leaves_old_file_and_no_temp(store):
    """A write that fails (missing column) leaves the previous partition intact and no temp file."""
    store.write("problems", problems_table([problem("p1")]), "shard_000")
    with pytest.raises(ValueError):
        store.write("problems", problems_table([problem("p2")]).drop_columns(["question"]), "shard_000")
    assert [r["problem_id"] for r in store.read("problems").to_pylist()] == ["p1"]
    assert [p.name for p in (store.root / "problems").iterdir()] == ["shard_000.parquet"]


def test_overwrite_replaces_shard(store):
    """Writing a shard again replaces it: reading all shards has no duplicate rows."""
    store.write("problems", problems_table([problem("p1"), problem("p2")]), "shard_000")
    store.write("problems", problems_table([problem("p3")]), "shard_000")
    back = store.read("problems")
    assert back.column("problem_id").to_pylist() == ["p3"]


def test_read_missing_shard_is_empty_with_schema(store):
    """Reading a shard that does not exist gives an empty table of the schema."""
    store.write("problems", problems_table([problem("p1")]), "shard_000")
    back = store.read("problems", "shard_999")
    assert back.num_rows == 0
    assert back.schema.equals(PROBLEMS)


@pytest.mark.parametrize("table", list(TABLES))
def test_read_empty_table_is_empty_with_schema(store, table):
    """Reading a table that has no files gives an empty table of its schema."""
    back = store.read(table, round=1 if table in ROUND_TABLES else None)
    assert back.num_rows == 0
    assert back.schema.equals(TABLES[table])


def test_read_all_shards_concatenates(store):
    """Reading without a shard concatenates every shard of the table (of the round)."""
    store.write("problems", problems_table([problem("p1"), problem("p2")]), "shard_000")
    store.write("problems", problems_table([problem("p3", shard="shard_001")]), "shard_001")
    back = store.read("problems")
    assert back.schema.equals(PROBLEMS)
    assert sorted(back.column("problem_id").to_pylist()) == ["p1", "p2", "p3"]

    store.write("tree_nodes", small_tree(round=1), "shard_000", round=1)
    store.write("tree_nodes", small_tree(round=1, shard="shard_001"), "shard_001", round=1)
    store.write("tree_nodes", small_tree(round=2), "shard_000", round=2)
    assert store.read("tree_nodes", round=1).num_rows == 6
    assert set(store.read("tree_nodes", round=1).column("round").to_pylist()) == {1}
    assert store.read("tree_nodes", round=2).num_rows == 3
    assert store.read("tree_nodes", round=3).num_rows == 0


def test_delete(store):
    """delete removes a partition; deleting a missing one is not an error."""
    store.write("problems", problems_table([problem("p1")]), "shard_000")
    store.delete("problems", "shard_000")
    assert not store.path("problems", "shard_000").exists()
    assert store.meta("problems", "shard_000") is None
    assert store.read("problems").num_rows == 0
    store.delete("problems", "shard_000")


# --- views ---------------------------------------------------------------------------------------


def test_connect_empty_store_has_empty_views(store):
    """On an empty store every table is an empty view with the schema's columns."""
    con = connect(store)
    try:
        for table, schema in TABLES.items():
            assert con.execute(f"select count(*) from {table}").fetchone() == (0,)
            columns = [row[0] for row in con.execute(f"describe {table}").fetchall()]
            assert columns == schema.names
        assert con.execute("select count(*) from search_shards").fetchone() == (0,)
    finally:
        con.close()


def test_query_sees_written_rows(store):
    """After writes, query() sees the rows of every partition."""
    store.write("tree_nodes", small_tree(round=1), "shard_000", round=1)
    store.write("tree_nodes", small_tree(round=2), "shard_000", round=2)
    store.write("problems", problems_table([problem("p1"), problem("p2")]), "shard_000")
    out = query(store, "select round, count(*) as n from tree_nodes group by round order by round")
    assert out.to_pylist() == [{"round": 1, "n": 3}, {"round": 2, "n": 3}]
    out = query(store, "select count(*) as n from problems")
    assert out.to_pylist() == [{"n": 2}]
    # tables without files are still empty views
    assert query(store, "select count(*) as n from trajectories").to_pylist() == [{"n": 0}]


def test_query_parameters(store):
    """Named $parameters are bound from the params dict."""
    store.write("tree_nodes", small_tree(round=1), "shard_000", round=1)
    store.write("tree_nodes", tree_table([tree_node(round=2)]), "shard_000", round=2)
    sql = "select count(*) as n from tree_nodes where round = $r"
    assert query(store, sql, {"r": 1}).to_pylist() == [{"n": 3}]
    assert query(store, sql, {"r": 2}).to_pylist() == [{"n": 1}]
    assert query(store, sql, {"r": 3}).to_pylist() == [{"n": 0}]


def test_view_statements_empty_store(store):
    """An empty store has no view statements."""
    assert view_statements(store) == []


def test_view_statements_work_in_a_fresh_connection(store, tmp_path, monkeypatch):
    """view_statements gives CREATE VIEW statements with absolute paths that run in any DuckDB connection."""
    store.write("tree_nodes", small_tree(), "shard_000", round=1, meta=SEARCH_META)
    store.write("problems", problems_table([problem("p1"), problem("p2")]), "shard_000")
    statements = view_statements(store)
    assert statements
    assert all(s.lstrip().upper().startswith("CREATE OR REPLACE VIEW") for s in statements)
    assert all(str(store.root) in s for s in statements)
    assert os.path.isabs(str(store.root))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # absolute paths: the working directory does not matter
    con = duckdb.connect()
    try:
        for statement in statements:
            con.execute(statement)
        assert con.execute("select count(*) from tree_nodes").fetchone() == (3,)
        assert con.execute("select count(*) from problems").fetchone() == (2,)
        assert con.execute("select count(*) from search_shards").fetchone() == (1,)
    finally:
        con.close()


def test_view_statements_with_quote_in_root(tmp_path):
    """A store root containing a single quote still gives working views."""
    store = Warehouse(tmp_path / "it's store")
    store.write("problems", problems_table([problem("p1")]), "shard_000")
    assert query(store, "select count(*) as n from problems").to_pylist() == [{"n": 1}]


def test_search_shards_exposes_tree_nodes_metadata(store):
    """search_shards lists each tree_nodes partition with round, shard, identity, stats and config."""
    store.write("tree_nodes", small_tree(), "shard_000", round=1, meta=SEARCH_META)
    store.write("problems", problems_table([problem("p1")]), "shard_000", meta={"identity": "not a search"})
    rows = query(store, "select * from search_shards").to_pylist()
    assert len(rows) == 1
    row = rows[0]
    assert row["file"] == str(store.path("tree_nodes", "shard_000", round=1))
    assert row["round"] == 1
    assert row["shard"] == "shard_000"
    assert row["identity"] == "abc"
    assert (row["problems"], row["nodes"], row["wall_s"]) == (2, 3, 0.5)
    assert json.loads(row["config"]) == {"search": {"rollouts": 8}}
    out = query(store, "select cast(json_extract(config, '$.search.rollouts') as integer) as rollouts from search_shards")
    assert out.to_pylist() == [{"rollouts": 8}]


def test_search_shards_one_row_per_partition(store):
    """Each written tree_nodes partition appears once in search_shards."""
    for round in (1, 2):
        for shard in ("shard_000", "shard_001"):
            store.write("tree_nodes", small_tree(round=round, shard=shard), shard, round=round,
                        meta={**SEARCH_META, "round": round, "shard": shard})
    rows = query(store, "select round, shard from search_shards order by round, shard").to_pylist()
    assert rows == [{"round": r, "shard": s} for r in (1, 2) for s in ("shard_000", "shard_001")]


# --- named queries -------------------------------------------------------------------------------


def test_named_queries_cover_every_file():
    """named_queries returns every .sql file of warehouse/queries, by stem."""
    assert QUERIES_DIR.is_dir()
    files = sorted(p.stem for p in QUERIES_DIR.iterdir() if p.is_file())
    queries = named_queries()
    assert sorted(queries) == files
    assert all(sql.strip() for sql in queries.values())


def test_query_params():
    """query_params lists the distinct $names of a query, sorted."""
    assert query_params("select $b, $a, $b, $_c1 from t where x = '$'") == ["_c1", "a", "b"]
    assert query_params("select 1") == []
    assert query_params(named_queries()["trajectory_text"]) == ["leaf_node_id", "problem_id", "round"]


@pytest.mark.parametrize("name", sorted(named_queries()))
def test_named_query_runs_on_empty_store(store, name):
    """Every named query parses and runs on an empty store with its parameters set to None."""
    sql = named_queries()[name]
    params = {p: None for p in query_params(sql)}
    result = query(store, sql, params)
    assert isinstance(result, pa.Table)


@pytest.mark.parametrize("name", list(named_queries()))
def test_named_query_runs_on_populated_store(store, name):
    """Every named query runs on a store holding tree_nodes (with search metadata) and problems."""
    store.write("tree_nodes", small_tree(), "shard_000", round=1, meta=SEARCH_META)
    store.write("problems", problems_table([problem("p1"), problem("p2")]), "shard_000")
    sql = named_queries()[name]
    result = query(store, sql, {p: None for p in query_params(sql)})
    assert isinstance(result, pa.Table)


def test_rstar_sql_reports_a_bad_query_without_a_traceback(store, monkeypatch, capsys):
    """`rstar sql` with SQL DuckDB rejects: exit 2 and DuckDB's message naming the column."""
    from rstar_pipeline import cli

    store.write("tree_nodes", small_tree(round=1), "shard_000", round=1)
    monkeypatch.setenv("RSTAR_STORE", str(store.root))
    assert cli.main(["sql", "SELECT stats FROM search_shards"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rstar: SQL: Binder Error") and '"stats"' in err and "Traceback" not in err
    assert cli.main(["sql", "SELECT count(*) AS n FROM tree_nodes", "--format", "json"]) == 0
    assert '"n": 3' in capsys.readouterr().out
