"""The engine's exception tree. Foreign errors (SQLAlchemy, Celery) are translated at the boundary.

EngineError
├── UnknownTaskType        (a task type nobody registered)
├── InvalidInput           (input failed the handler's pydantic model)
├── NotFound               (task, run or approval id)
├── Conflict               (idempotency mismatch, decision already taken, illegal transition)
├── Forbidden              (four eyes, ownership)
├── WorkflowDefinitionError (YAML that does not validate; names file, line, field)
└── TaskError              (raised by handlers)
    ├── RetryableError     (retry per the type's policy)
    └── PermanentError     (fail now, no retry)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class UnknownTaskType(EngineError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown task type {name!r}; known types: {', '.join(sorted(known)) or '(none)'}")
        self.name = name
        self.known = sorted(known)


class InvalidInput(EngineError):
    def __init__(self, message: str, errors: Sequence[Mapping[str, object]] | None = None) -> None:
        super().__init__(message)
        self.errors: list[Mapping[str, object]] = list(errors or [])


class NotFound(EngineError):
    pass


class Conflict(EngineError):
    pass


class Forbidden(EngineError):
    pass


class WorkflowDefinitionError(EngineError):
    def __init__(self, file: str, line: int | None, field: str, message: str) -> None:
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {field}: {message}")
        self.file, self.line, self.field = file, line, field


class TaskError(Exception):
    """Raised by a handler to say how its failure should be treated."""


class RetryableError(TaskError):
    pass


class PermanentError(TaskError):
    pass
