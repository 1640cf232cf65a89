"""Shared fixtures: real databases (a SQLite file and the PostgreSQL server), settings per test."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gpt2_agent.config import Settings, load_settings
from gpt2_agent.store import Database, create_database, upgrade

PG_URL = os.environ.get("GPT2_AGENT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_ok: bool | None = None


def postgres_available() -> bool:
    """Whether the test PostgreSQL answers (checked once per session)."""
    global _pg_ok
    if _pg_ok is None:
        try:
            engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            _pg_ok = True
        except Exception:
            _pg_ok = False
    return _pg_ok


def require_postgres() -> None:
    if not postgres_available():
        if os.environ.get("CI") or os.environ.get("GPT2_AGENT_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here but {PG_URL} does not answer")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}; start it or set GPT2_AGENT_TEST_PG_URL")


class PgSchema:
    """A fresh PostgreSQL schema, so concurrent test runs cannot collide."""

    def __init__(self) -> None:
        self.name = f"t_{uuid.uuid4().hex[:12]}"
        self._admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.name}"'))

    @property
    def url(self) -> str:
        return f"{PG_URL}?options=-csearch_path%3D{self.name}"

    def drop(self) -> None:
        # Threads of the app under test may still be finishing a transaction: wait briefly, retry.
        for attempt in range(3):
            try:
                with self._admin.connect() as conn:
                    conn.execute(text("SET lock_timeout = '5s'"))
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))
                break
            except Exception:
                if attempt == 2:
                    raise
                time.sleep(1)
        self._admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL: a real SQLite file, then the real PostgreSQL (own schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    require_postgres()
    schema = PgSchema()
    try:
        yield schema.url
    finally:
        schema.drop()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """Settings on a temp HOME and the parametrized database, with short leases for tests."""
    return load_settings(
        home=tmp_path / "home",
        database_url=db_url,
        lease_seconds=2.0,
        heartbeat_seconds=0.5,
        sweep_interval_seconds=0.2,
        poll_interval_seconds=0.05,
        executor_concurrency=4,
    )


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    db = create_database(settings.database_url)
    upgrade(db)
    yield db
    db.dispose()
