"""Data connectors: read records from SQL, CSV, JSONL or Parquet in bounded-memory batches.

Every source yields ``list[dict[str, Any]]`` batches of at most ``batch_size`` records and keeps
no more than one batch (plus the driver's buffer) in memory::

    source = open_source({"kind": "sql", "url": "sqlite:///warehouse.db",
                          "query": "SELECT order_no, amount, notes FROM orders"})
    for batch in source.batches():
        ...
    for record in source:          # the same, one record at a time
        ...

A column that the data does not have (in a SQL query or in ``columns=[...]``) raises
:class:`~gpt2_agent.training.data.errors.UnknownColumnError` naming it; other read failures
raise :class:`~gpt2_agent.training.data.errors.SourceReadError`.
"""

from __future__ import annotations

import abc
import csv
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from gpt2_agent.training.data.errors import SourceReadError, SourceSpecError, UnknownColumnError

Record = dict[str, Any]
Batch = list[Record]

DEFAULT_BATCH_SIZE = 1000


class DataSource(abc.ABC):
    """A readable collection of records. Subclasses implement :meth:`batches`."""

    kind: ClassVar[str]

    def __init__(self, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if batch_size < 1:
            raise SourceSpecError(f"batch_size must be at least 1 (got {batch_size})")
        self.batch_size = batch_size

    @abc.abstractmethod
    def batches(self) -> Iterator[Batch]:
        """Yield the records in batches of at most ``batch_size``; each call reads from the start."""

    @abc.abstractmethod
    def describe(self) -> str:
        """A short human description for messages and lineage (no secrets)."""

    def __iter__(self) -> Iterator[Record]:
        for batch in self.batches():
            yield from batch

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def _check_columns(wanted: Sequence[str] | None, available: Sequence[str], source: str) -> None:
    for column in wanted or ():
        if column not in available:
            raise UnknownColumnError(column, source=source, available=list(available))


# --- SQL ------------------------------------------------------------------------------------------

# How each database names the column it could not find.
_UNKNOWN_COLUMN_PATTERNS = (
    re.compile(r"no such column: ([\w.\"`\[\]]+)", re.I),  # SQLite
    re.compile(r"column \"?([\w.]+)\"? does not exist", re.I),  # PostgreSQL
    re.compile(r"Unknown column '([^']+)'", re.I),  # MySQL / MariaDB
    re.compile(r"invalid column name '([^']+)'", re.I),  # SQL Server
)


def _unknown_column(message: str) -> str | None:
    for pattern in _UNKNOWN_COLUMN_PATTERNS:
        match = pattern.search(message)
        if match:
            return match.group(1).strip('"`[]')
    return None


class SQLSource(DataSource):
    """Rows of ``query`` (SQL text, ``:name`` parameters) against any SQLAlchemy URL."""

    kind = "sql"

    def __init__(
        self,
        url: str,
        query: str,
        *,
        params: Mapping[str, Any] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        super().__init__(batch_size=batch_size)
        try:
            self._url = make_url(url)
        except ArgumentError as exc:
            raise SourceSpecError(f"not a database URL: {url!r}") from exc
        if not query.strip():
            raise SourceSpecError("sql source needs a non-empty query")
        self.query = query
        self.params = dict(params or {})

    def describe(self) -> str:
        return f"sql {self._url.render_as_string(hide_password=True)}"

    def batches(self) -> Iterator[Batch]:
        url = self._url
        if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                # stream_results: a server-side cursor where the driver has one (PostgreSQL), so
                # memory stays at one partition; SQLite's cursor is lazy anyway.
                conn.execution_options(stream_results=True, yield_per=self.batch_size)
                result = conn.execute(text(self.query), self.params)
                for partition in result.mappings().partitions(self.batch_size):
                    yield [dict(row) for row in partition]
        except DBAPIError as exc:
            raise self._translate(exc) from exc
        except SQLAlchemyError as exc:
            raise SourceReadError(f"{self.describe()}: {exc}") from exc
        finally:
            engine.dispose()

    def _translate(self, exc: DBAPIError) -> Exception:
        message = str(exc.orig) if exc.orig is not None else str(exc)
        column = _unknown_column(message)
        if column is not None:
            return UnknownColumnError(column, source=f"{self.describe()} query")
        first_line = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
        return SourceReadError(f"{self.describe()}: {first_line}")


# --- files ----------------------------------------------------------------------------------------


class _FileSource(DataSource):
    def __init__(
        self, path: str | Path, *, columns: Sequence[str] | None = None, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        super().__init__(batch_size=batch_size)
        self.path = Path(path)
        self.columns = list(columns) if columns is not None else None

    def describe(self) -> str:
        return f"{self.kind} {self.path}"

    def _require_file(self) -> None:
        if not self.path.is_file():
            raise SourceReadError(f"{self.describe()}: no such file")


class CSVSource(_FileSource):
    """Rows of a CSV file with a header line; values stay strings (empty fields are ``""``)."""

    kind = "csv"

    def __init__(
        self,
        path: str | Path,
        *,
        columns: Sequence[str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        encoding: str = "utf-8",
        delimiter: str = ",",
    ) -> None:
        super().__init__(path, columns=columns, batch_size=batch_size)
        self.encoding = encoding
        self.delimiter = delimiter

    def batches(self) -> Iterator[Batch]:
        self._require_file()
        with self.path.open(newline="", encoding=self.encoding) as fh:
            reader = csv.DictReader(fh, delimiter=self.delimiter)
            header = list(reader.fieldnames or [])
            _check_columns(self.columns, header, self.describe())
            keep = self.columns
            batch: Batch = []
            try:
                for row in reader:
                    batch.append({k: row[k] for k in keep} if keep else dict(row))
                    if len(batch) >= self.batch_size:
                        yield batch
                        batch = []
            except (csv.Error, UnicodeDecodeError) as exc:
                raise SourceReadError(f"{self.describe()} line {reader.line_num}: {exc}") from exc
            if batch:
                yield batch


class JSONLSource(_FileSource):
    """One JSON object per line; blank lines are skipped."""

    kind = "jsonl"

    def __init__(
        self,
        path: str | Path,
        *,
        columns: Sequence[str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        encoding: str = "utf-8",
    ) -> None:
        super().__init__(path, columns=columns, batch_size=batch_size)
        self.encoding = encoding

    def batches(self) -> Iterator[Batch]:
        self._require_file()
        batch: Batch = []
        with self.path.open(encoding=self.encoding) as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SourceReadError(f"{self.describe()} line {line_no}: {exc.msg}") from exc
                if not isinstance(record, dict):
                    raise SourceReadError(f"{self.describe()} line {line_no}: expected a JSON object")
                if self.columns:
                    _check_columns(self.columns, list(record), f"{self.describe()} line {line_no}")
                    record = {k: record[k] for k in self.columns}
                batch.append(record)
                if len(batch) >= self.batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch


class ParquetSource(_FileSource):
    """Rows of a Parquet file, read one record batch at a time with pyarrow."""

    kind = "parquet"

    def batches(self) -> Iterator[Batch]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._require_file()
        try:
            parquet = pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as exc:
            raise SourceReadError(f"{self.describe()}: {exc}") from exc
        with parquet:
            _check_columns(self.columns, parquet.schema_arrow.names, self.describe())
            try:
                for record_batch in parquet.iter_batches(batch_size=self.batch_size, columns=self.columns):
                    yield record_batch.to_pylist()
            except pa.ArrowException as exc:
                raise SourceReadError(f"{self.describe()}: {exc}") from exc


# --- factory --------------------------------------------------------------------------------------

_KINDS: dict[str, type[DataSource]] = {
    "sql": SQLSource,
    "csv": CSVSource,
    "jsonl": JSONLSource,
    "parquet": ParquetSource,
}
_REQUIRED = {"sql": ("url", "query"), "csv": ("path",), "jsonl": ("path",), "parquet": ("path",)}
_OPTIONAL = {
    "sql": ("params", "batch_size"),
    "csv": ("columns", "batch_size", "encoding", "delimiter"),
    "jsonl": ("columns", "batch_size", "encoding"),
    "parquet": ("columns", "batch_size"),
}


def open_source(spec: Mapping[str, Any], *, base_dir: str | Path | None = None) -> DataSource:
    """Build a source from a config mapping such as a TOML table.

    ``{"kind": "sql", "url": ..., "query": ...}``, ``{"kind": "csv", "path": ...}``, and likewise
    ``jsonl`` and ``parquet``; optional keys: ``batch_size``, ``columns`` (files), ``params``
    (sql), ``encoding``, ``delimiter`` (csv). Relative paths are resolved against ``base_dir``.
    """
    kind = spec.get("kind")
    if kind not in _KINDS:
        raise SourceSpecError(f"unknown source kind {kind!r}; expected one of {', '.join(_KINDS)}")
    allowed = {"kind", *_REQUIRED[kind], *_OPTIONAL[kind]}
    for key in spec:
        if key not in allowed:
            raise SourceSpecError(
                f"unknown key {key!r} for a {kind} source; allowed: {', '.join(sorted(allowed))}"
            )
    for key in _REQUIRED[kind]:
        if not spec.get(key):
            raise SourceSpecError(f"a {kind} source needs {key!r}")
    kwargs = {k: v for k, v in spec.items() if k != "kind"}
    if "path" in kwargs:
        path = Path(kwargs["path"]).expanduser()
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        kwargs["path"] = path
    if "columns" in kwargs and (
        isinstance(kwargs["columns"], str) or not all(isinstance(c, str) for c in kwargs["columns"])
    ):
        raise SourceSpecError("columns must be a list of column names")
    return _KINDS[kind](**kwargs)


def iter_records(source: DataSource) -> Iterator[Record]:
    """Every record of ``source``, one at a time."""
    return iter(source)


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Batch",
    "CSVSource",
    "DataSource",
    "JSONLSource",
    "ParquetSource",
    "Record",
    "SQLSource",
    "iter_records",
    "open_source",
]
