"""Shared fixtures: real databases (a SQLite file and the PostgreSQL server), settings per test, a demo
warehouse and a tiny order-audit model trained once per session, and an SMTP sink on 127.0.0.1."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text

from gpt2_agent.config import Settings, load_settings
from gpt2_agent.demo import generate_warehouse
from gpt2_agent.store import Database, create_database, upgrade
from tests.serverproc import free_port

if TYPE_CHECKING:
    from gpt2_agent.nlu.train import NluTrainResult

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


ROOT = Path(__file__).resolve().parents[1]
WAREHOUSE_ORDERS = 1500
WAREHOUSE_SEED = 0
# The tiny config, made smaller still: the tests need a real model of the real format, not a good one.
TRAIN_OVERRIDES = [
    "train.max_steps=30",
    "data.limit=800",
    "eval.plots=false",
    "train.eval_every=1000",
    "train.checkpoint_every=1000",
    "tokenizer.vocab_size=400",
]


# --- session-wide: the warehouse and the model ---------------------------------------------------


@pytest.fixture(scope="session")
def base_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo warehouse (SQLite file, fixed seed) that tests copy before changing it."""
    path = tmp_path_factory.mktemp("orders-warehouse") / "warehouse.db"
    generate_warehouse(f"sqlite:///{path}", orders=WAREHOUSE_ORDERS, seed=WAREHOUSE_SEED)
    return path


@pytest.fixture(scope="session")
def audit_model_dir(tmp_path_factory: pytest.TempPathFactory, base_warehouse: Path) -> Path:
    """The ``order-audit`` model trained once per session with the tiny config (a model folder)."""
    from gpt2_agent.training.pipeline import train_from_config

    home = tmp_path_factory.mktemp("orders-train")
    settings = load_settings(home=home, warehouse_url=f"sqlite:///{base_warehouse}")
    result = train_from_config(
        ROOT / "configs" / "order-audit.tiny.toml", settings, overrides=TRAIN_OVERRIDES, progress=False
    )
    return Path(result.model_dir)


# --- SMTP ---------------------------------------------------------


@dataclass
class Sink:
    """An aiosmtpd handler that keeps every message."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@dataclass
class Smtp:
    sink: Sink
    port: int


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    """A real SMTP server on 127.0.0.1."""
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield Smtp(sink, port)
    finally:
        controller.stop()


# --- NLU: a tiny model trained once per session ----------------------------------------------------

NLU_TINY_CONFIG = ROOT / "configs" / "nlu.tiny.toml"


@pytest.fixture(scope="session")
def tiny_nlu(tmp_path_factory: pytest.TempPathFactory) -> NluTrainResult:
    """The tiny NLU model (configs/nlu.tiny.toml, under a minute), not registered: tests register copies."""
    from gpt2_agent.nlu.train import train_nlu

    home = tmp_path_factory.mktemp("nlu-tiny")
    return train_nlu(
        NLU_TINY_CONFIG, load_settings(home=home), ["register.enabled=false"], progress=False, resume=False
    )
