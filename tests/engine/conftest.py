from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from gpt2_agent.config import Settings
from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.executors.local import LocalExecutor
from gpt2_agent.store import Database
from tests.plugins import sample


@pytest.fixture
def engine(database: Database, settings: Settings) -> Engine:
    eng = Engine(database, settings)
    sample.register(eng, settings)
    return eng


@pytest.fixture
def executor(engine: Engine) -> Iterator[LocalExecutor]:
    ex = LocalExecutor(engine)
    ex.start()
    yield ex
    ex.stop(wait=True)


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")
