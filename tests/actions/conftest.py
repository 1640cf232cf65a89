"""Fixtures for the action tests: SQLite and PostgreSQL databases, storage, a real SMTP sink."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from sqlalchemy import create_engine, text

from gpt2_agent.actions.storage import FileService, Storage
from gpt2_agent.config import Settings
from gpt2_agent.store import Database, create_database, upgrade

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", max_upload_bytes=1024 * 1024)


@pytest.fixture
def sqlite_db(settings: Settings) -> Iterator[Database]:
    db = create_database(settings.database_url)
    upgrade(db)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def pg_db_session() -> Iterator[Database]:
    """PostgreSQL in a schema of its own for this test session, dropped at the end."""
    admin = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.connect():
            pass
    except Exception as exc:  # any connection failure means "no server here"
        admin.dispose()
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    schema = f"actions_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = create_database(PG_URL, schema=schema)
    try:
        upgrade(db)
        yield db
    finally:
        db.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> Iterator[Database]:
    """The same tests on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_db")
        return
    pg: Database = request.getfixturevalue("pg_db_session")
    yield pg
    with pg.session() as session:
        session.execute(text("DELETE FROM files"))
        session.execute(text("DELETE FROM tasks"))


@pytest.fixture
def storage(settings: Settings) -> Storage:
    return Storage(settings.storage_path)


@pytest.fixture
def files(db: Database, storage: Storage, settings: Settings) -> FileService:
    return FileService(db, storage, settings)


@dataclass
class Sink:
    """An aiosmtpd handler that keeps what it receives and refuses the addresses it is told to."""

    messages: list[Envelope] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address -> reply, e.g. "550 5.1.1 no user"
    data_reply: str | None = None  # reply to DATA instead of accepting

    async def handle_RCPT(  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.data_reply:
            return self.data_reply
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


USERS = {"agent": "s3cret"}


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    ok = USERS.get(auth_data.login.decode()) == auth_data.password.decode()
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    host: str
    port: int
    sink: Sink


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 (AUTH offered without TLS, for the login test)."""
    sink = Sink()
    port = free_port()
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticator,
        auth_require_tls=False,
        ready_timeout=10,
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, sink)
    finally:
        controller.stop()


@pytest.fixture
def db_task_id(db: Database) -> int:
    """A real ``tasks`` row (``files.task_id`` references it)."""
    from gpt2_agent.store.engine_tables import Task

    with db.session() as session:
        task = Task(type="upload_file", status="running", input={}, idempotency_key="k")
        session.add(task)
        session.flush()
        return int(task.id)
