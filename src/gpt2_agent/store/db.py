"""Database connection: engine creation with the right pragmas, and session scopes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from gpt2_agent.config import Settings


class Database:
    """An engine plus a session factory. ``is_sqlite`` tells the engine which claim strategy to use."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        # Connections of this engine view begin with BEGIN IMMEDIATE on SQLite (see _configure_sqlite).
        self._writer = engine.execution_options(sqlite_immediate=True) if self.is_sqlite else engine

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: commit on success, rollback on error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def write_session(self) -> Iterator[Session]:
        """Like :meth:`session`, but on SQLite takes the write lock up front (``BEGIN IMMEDIATE``).

        Read-then-write transactions on SQLite otherwise fail with SQLITE_BUSY despite busy_timeout.
        """
        with self.sessions() as session, session.begin():
            if self.is_sqlite:
                session.connection(execution_options={"sqlite_immediate": True})
            yield session

    @contextlib.contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """Like :meth:`write_session`, but a bare connection: for hot paths that only run statements.

        An ORM session costs about as much as a short transaction's statements together.
        """
        with self._writer.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def create_database(
    url: str, *, schema: str | None = None, echo: bool = False, sqlite_synchronous: str = "NORMAL"
) -> Database:
    """Create a :class:`Database` for ``url``.

    SQLite gets WAL, a busy timeout and foreign keys, and ``synchronous`` as configured: with
    ``NORMAL`` (the default) a killed process loses nothing but a power loss or OS crash may roll
    back the last commits; ``FULL`` survives power loss at the cost of an fsync per commit. PostgreSQL may be
    pinned to a ``schema`` (used by tests so concurrent runs cannot collide).
    """
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        # pysqlite's own transaction handling would defeat BEGIN IMMEDIATE; manage it ourselves.
        engine = create_engine(url, **kwargs)
        if sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"sqlite synchronous must be NORMAL, FULL or EXTRA, not {sqlite_synchronous!r}")
        _configure_sqlite(engine, sqlite_synchronous.upper())
    else:
        if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        connect_args: dict[str, Any] = {"connect_timeout": 5}
        if schema:
            connect_args["options"] = f"-csearch_path={schema}"
        kwargs.update(connect_args=connect_args, pool_pre_ping=True, pool_size=10, max_overflow=20)
        engine = create_engine(url, **kwargs)
    return Database(engine)


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # autocommit at driver level; SQLAlchemy emits BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """The configured database, migrated to the latest schema unless ``migrate`` is False."""
    from gpt2_agent.store.migrate import upgrade

    db = create_database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    if migrate:
        upgrade(db)
    return db
