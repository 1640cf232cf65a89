"""Plain, HTTP-free values the registry returns. ``to_dict()`` gives JSON-ready dicts for API and CLI."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from pathlib import Path
from typing import Any


class VersionStatus(enum.StrEnum):
    """Lifecycle of a version."""

    # Files are in place, hashed and committed; the version may be resolved and aliased.
    READY = "ready"
    # Kept for history and lineage; no alias may point at it and "latest" skips it.
    ARCHIVED = "archived"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class _Record:
    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready values (datetimes as ISO 8601, paths as strings)."""
        assert dataclasses.is_dataclass(self)
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True)
class VersionInfo(_Record):
    """One registered version. ``path`` is the absolute folder to hand to ``from_pretrained``."""

    name: str
    version: int
    path: Path
    status: str
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    eval_set_hash: str | None
    files: dict[str, str]  # relative path -> sha256
    size_bytes: int
    created_by: str
    created_at: dt.datetime
    aliases: list[str]

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"


@dataclasses.dataclass(frozen=True)
class ModelInfo(_Record):
    """A model name with its current aliases. ``metric`` is the effective promotion metric."""

    name: str
    task: str
    description: str
    metric: str
    generation: int
    latest_version: int | None
    version_count: int
    aliases: dict[str, int]
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class AliasChange(_Record):
    """One row of alias history. ``to_version`` None means the alias was removed."""

    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    who: str
    at: dt.datetime
    reason: str


@dataclasses.dataclass(frozen=True)
class PromotionResult(_Record):
    """Outcome of :meth:`Registry.promote`. ``changed`` is False when the alias already pointed there."""

    name: str
    alias: str
    version: int
    previous_version: int | None
    metric: str
    value: float | None
    previous_value: float | None
    forced: bool
    changed: bool
    reason: str
