"""The handler protocol: what a task type is, and the registry actions register into.

The engine knows no business: ``actions`` (or a user's plugin) call :meth:`HandlerRegistry.register`
with a pydantic input model, an output model and a function ``fn(ctx, input) -> output``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from gpt2_agent.engine.errors import InvalidInput, UnknownTaskType

I = TypeVar("I", bound=BaseModel)  # noqa: E741
O = TypeVar("O", bound=BaseModel)  # noqa: E741


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: attempt n waits ``initial * multiplier**(n-1)`` seconds, capped."""

    max_attempts: int = 3
    initial_backoff_seconds: float = 1.0
    multiplier: float = 2.0
    max_backoff_seconds: float = 300.0

    def backoff(self, attempt: int) -> float:
        """Delay before the attempt after ``attempt`` (1-based)."""
        delay = self.initial_backoff_seconds * self.multiplier ** max(attempt - 1, 0)
        return float(min(delay, self.max_backoff_seconds))


@dataclass
class TaskContext:
    """What a handler gets besides its input.

    ``idempotency_key`` is stable across retries of the same step: pass it to external systems
    (payment gateways, SMTP Message-ID) so a retried side effect happens once.
    """

    task_id: int
    attempt: int
    idempotency_key: str
    run_id: int | None = None
    step_name: str | None = None
    submitted_by: str | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("gpt2_agent.task"))

    def check_cancelled(self) -> None:
        """Raise if the task was cancelled or its lease was lost; call between long sub-steps."""
        if self.cancelled.is_set():
            from gpt2_agent.engine.errors import PermanentError

            raise PermanentError("cancelled")


@dataclass(frozen=True)
class TaskType(Generic[I, O]):
    """A registered task type."""

    name: str
    input_model: type[I]
    output_model: type[O]
    fn: Callable[[TaskContext, I], O]
    retry: RetryPolicy = RetryPolicy()
    timeout_seconds: float | None = 300.0
    queue: str = "default"
    description: str = ""

    def parse_input(self, data: Any) -> I:
        """Validate ``data`` against the input model; errors name the field."""
        try:
            return self.input_model.model_validate(data)
        except ValidationError as exc:
            errors = [
                {"field": ".".join(str(p) for p in e["loc"]) or "input", "message": e["msg"]}
                for e in exc.errors(include_url=False)
            ]
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            raise InvalidInput(f"invalid input for {self.name!r}: {detail}", errors) from None


class HandlerRegistry:
    """Task types by name. One per engine; thread-safe for reads after start-up."""

    def __init__(self) -> None:
        self._types: dict[str, TaskType[Any, Any]] = {}
        self._routes: dict[str, str] = {}

    def register(self, task_type: TaskType[Any, Any]) -> None:
        """Add a task type; registering a name twice is a programming error."""
        if task_type.name in self._types:
            raise ValueError(f"task type {task_type.name!r} is already registered")
        if task_type.name in self._routes:
            task_type = dataclasses.replace(task_type, queue=self._routes[task_type.name])
        self._types[task_type.name] = task_type

    def route(self, routes: Mapping[str, str]) -> None:
        """Send task types to named queues (configuration wins over the queue a type registered with).

        Applies to types registered before and after this call; unknown names are kept for later.
        """
        self._routes.update(routes)
        for name, queue in routes.items():
            if name in self._types:
                self._types[name] = dataclasses.replace(self._types[name], queue=queue)

    def get(self, name: str) -> TaskType[Any, Any]:
        try:
            return self._types[name]
        except KeyError:
            raise UnknownTaskType(name, list(self._types)) from None

    def names(self) -> list[str]:
        return sorted(self._types)

    def __contains__(self, name: object) -> bool:
        return name in self._types
