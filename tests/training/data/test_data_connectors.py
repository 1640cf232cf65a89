"""Connectors: every format streams in batches, unknown columns are named, specs are checked."""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, text

from gpt2_agent.training.data import (
    CSVSource,
    JSONLSource,
    ParquetSource,
    SourceReadError,
    SourceSpecError,
    SQLSource,
    UnknownColumnError,
    open_source,
)

RECORDS = [
    {"order_no": f"{10000 + i}", "amount": f"{i * 1.5:.2f}", "notes": f"备注 {i} note"} for i in range(25)
]


def _write(kind: str, path: Path, records: list[dict[str, Any]]) -> Path:
    if kind == "csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    else:
        pq.write_table(pa.Table.from_pylist(records), path, row_group_size=7)
    return path


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_file_sources_stream_in_batches(tmp_path: Path, kind: str) -> None:
    path = _write(kind, tmp_path / f"data.{kind}", RECORDS)
    source = open_source({"kind": kind, "path": str(path), "batch_size": 10})
    batches = list(source.batches())
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [r for b in batches for r in b] == RECORDS
    assert list(source) == RECORDS  # a second pass reads from the start again


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_file_sources_select_columns_and_name_unknown_ones(tmp_path: Path, kind: str) -> None:
    path = _write(kind, tmp_path / f"data.{kind}", RECORDS)
    picked = open_source({"kind": kind, "path": str(path), "columns": ["notes", "order_no"]})
    assert next(iter(picked)) == {"notes": "备注 0 note", "order_no": "10000"}
    bad = open_source({"kind": kind, "path": str(path), "columns": ["order_no", "amout"]})
    with pytest.raises(UnknownColumnError, match="amout") as info:
        list(bad)
    assert info.value.column == "amout"


def test_missing_file_and_bad_lines(tmp_path: Path) -> None:
    with pytest.raises(SourceReadError, match="no such file"):
        list(CSVSource(tmp_path / "nope.csv"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n\n{"a": 2\n', encoding="utf-8")
    with pytest.raises(SourceReadError, match="line 3"):
        list(JSONLSource(bad))
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_text("hello", encoding="utf-8")
    with pytest.raises(SourceReadError):
        list(ParquetSource(not_parquet))


def _make_table(url: str, n: int) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS items"))
        conn.execute(
            text("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(50), price NUMERIC(10, 2))")
        )
        conn.execute(
            text("INSERT INTO items (id, name, price) VALUES (:id, :name, :price)"),
            [{"id": i, "name": f"商品 {i}", "price": i / 4} for i in range(n)],
        )
    engine.dispose()


def test_sql_source_streams_and_takes_parameters(db_url: str) -> None:
    _make_table(db_url, 23)
    source = SQLSource(
        db_url, "SELECT id, name FROM items WHERE id >= :low ORDER BY id", params={"low": 3}, batch_size=8
    )
    batches = list(source.batches())
    assert [len(b) for b in batches] == [8, 8, 4]
    assert batches[0][0] == {"id": 3, "name": "商品 3"}
    assert "secret" not in SQLSource("postgresql://u:secret@h/db", "SELECT 1").describe()


def test_sql_unknown_column_is_named(db_url: str) -> None:
    _make_table(db_url, 3)
    source = open_source({"kind": "sql", "url": db_url, "query": "SELECT id, prize FROM items"})
    with pytest.raises(UnknownColumnError, match="prize") as info:
        list(source)
    assert info.value.column == "prize"
    with pytest.raises(SourceReadError):
        list(SQLSource(db_url, "SELECT id FROM no_such_table"))


def test_sources_keep_memory_bounded(tmp_path: Path) -> None:
    """Reading a file much larger than a batch never holds much more than a batch."""
    rows = [{"order_no": str(i), "notes": "x" * 200} for i in range(40_000)]  # ~9 MB of text
    csv_path = _write("csv", tmp_path / "big.csv", rows)
    sqlite_url = f"sqlite:///{tmp_path / 'big.db'}"
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (order_no TEXT, notes TEXT)"))
        conn.execute(text("INSERT INTO t VALUES (:order_no, :notes)"), rows)
    engine.dispose()
    del rows
    for source in (
        CSVSource(csv_path, batch_size=200),
        SQLSource(sqlite_url, "SELECT * FROM t", batch_size=200),
    ):
        tracemalloc.start()
        count = sum(len(b) for b in source.batches())
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count == 40_000
        assert peak < 3_000_000, f"{source!r} peaked at {peak} bytes"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "excel", "path": "a.xlsx"}, "unknown source kind 'excel'"),
        ({"path": "a.csv"}, "unknown source kind None"),
        ({"kind": "csv"}, "needs 'path'"),
        ({"kind": "sql", "url": "sqlite://"}, "needs 'query'"),
        ({"kind": "csv", "path": "a.csv", "colums": ["a"]}, "unknown key 'colums'"),
        ({"kind": "csv", "path": "a.csv", "columns": "a,b"}, "list of column names"),
        ({"kind": "csv", "path": "a.csv", "batch_size": 0}, "batch_size"),
        ({"kind": "sql", "url": "not a url", "query": "SELECT 1"}, "not a database URL"),
    ],
)
def test_bad_specs_are_named(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SourceSpecError, match=message.replace("(", r"\(")):
        open_source(spec)


def test_relative_paths_resolve_against_base_dir(tmp_path: Path) -> None:
    _write("jsonl", tmp_path / "d.jsonl", RECORDS[:2])
    source = open_source({"kind": "jsonl", "path": "d.jsonl"}, base_dir=tmp_path)
    assert len(list(source)) == 2
