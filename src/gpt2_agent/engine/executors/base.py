"""The executor contract and how one is chosen by name from settings."""

from __future__ import annotations

import os
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from gpt2_agent.engine.core import Engine


class UnknownExecutor(ValueError):
    pass


def worker_id(prefix: str = "") -> str:
    """A unique worker identity: host, pid and a random suffix (a restarted process is new)."""
    return f"{prefix}{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Executor(ABC):
    """Moves queued tasks to handlers.

    ``start`` begins consuming, ``notify`` tells it new task ids were committed, ``stop`` drains.
    Capabilities are class flags.
    """

    name: ClassVar[str]
    is_local: ClassVar[bool] = True

    def __init__(self, engine: Engine, *, queues: Sequence[str] | None = None) -> None:
        self.engine = engine
        self.queues = list(queues) if queues else None

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self, wait: bool = True) -> None: ...

    @abstractmethod
    def notify(self, task_ids: list[int]) -> None: ...


def load_executor(name: str, engine: Engine, *, queues: Sequence[str] | None = None) -> Executor:
    """Build the executor named in settings (``local`` or ``celery``)."""
    if name == "local":
        from gpt2_agent.engine.executors.local import LocalExecutor

        return LocalExecutor(engine, queues=queues)
    if name == "celery":
        try:
            from gpt2_agent.engine.executors.celery import CeleryExecutor
        except ImportError as exc:
            raise UnknownExecutor(f"the celery executor is not available: {exc}") from None
        executor: Executor = CeleryExecutor(engine, queues=queues)
        return executor
    raise UnknownExecutor(f"unknown executor {name!r}; choose 'local' or 'celery'")
