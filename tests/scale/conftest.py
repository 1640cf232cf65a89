"""Fixtures for scale-out tests: PostgreSQL schemas, Redis and RabbitMQ on 127.0.0.1, processes.

Every test gets its own PostgreSQL schema and its own broker namespace (``broker_queue_prefix``),
so runs cannot see each other's tasks or messages. A missing service skips the test with the
reason, unless ``CI`` (or ``GPT2_AGENT_REQUIRE_BROKERS``) is set: then it fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PgSchema, require_postgres

REDIS_URL = os.environ.get("GPT2_AGENT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("GPT2_AGENT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
BROKERS = {"redis": REDIS_URL, "rabbitmq": AMQP_URL}
_answers: dict[str, bool] = {}


def broker_available(name: str) -> bool:
    """Whether the broker answers (checked once per session)."""
    if name not in _answers:
        try:
            if name == "redis":
                import redis

                redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
            else:
                from kombu import Connection

                with Connection(AMQP_URL, connect_timeout=2) as conn:
                    conn.ensure_connection(max_retries=1)
            _answers[name] = True
        except Exception:
            _answers[name] = False
    return _answers[name]


def require_broker(name: str) -> str:
    """The broker's URL, or skip (fail under CI) when it does not answer."""
    if not broker_available(name):
        if os.environ.get("CI") or os.environ.get("GPT2_AGENT_REQUIRE_BROKERS"):
            pytest.fail(f"{name} is required here but {BROKERS[name]} does not answer")
        pytest.skip(f"{name} not reachable at {BROKERS[name]}; start it (../shared/services-up)")
    return BROKERS[name]


def delete_queues(url: str, prefix: str, names: list[str]) -> None:
    """Remove a test's queues from RabbitMQ (Redis keys vanish with their prefix's contents)."""
    if not url.startswith("amqp"):
        return
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=2) as conn:
            channel = conn.default_channel
            for name in names:
                channel.queue_delete(f"{prefix}{name}")
                channel.exchange_delete(f"{prefix}{name}")
    except Exception:
        pass


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema (the scaled-out database)."""
    require_postgres()
    schema = PgSchema()
    try:
        yield schema.url
    finally:
        schema.drop()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest, prefix: str) -> Iterator[str]:
    """Each broker in turn."""
    url = require_broker(request.param)
    yield url
    delete_queues(url, prefix, ["default", "special", "approvals"])


@pytest.fixture
def redis_url(prefix: str) -> str:
    return require_broker("redis")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"
