"""Tables of the model registry: models, their numbered versions, movable aliases and alias history.

The files of a version live on disk under ``models_path/<name>/<version>/``; these rows say what
they should contain (SHA-256 per file) and which version each alias points at.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from gpt2_agent.store.base import Base, UTCDateTime, utcnow

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class RegisteredModel(Base):
    """A model name. ``generation`` grows on every change (new version, alias move) for pollers."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    task: Mapped[str] = mapped_column(String(32), default="")  # classify | tag | generate | ""
    description: Mapped[str] = mapped_column(Text, default="")
    metric: Mapped[str | None] = mapped_column(String(100), nullable=True)  # promotion metric; None = default
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelVersion(Base):
    """One immutable version of a model; ``(name, version)`` is unique, which is what serialises numbering."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_model_versions_name_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(ForeignKey("models.name"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(300))  # relative to settings.models_path, POSIX
    status: Mapped[str] = mapped_column(String(16), default="ready")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    eval_set_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # relative path -> sha256 hex
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelAlias(Base):
    """Where an alias (``production``, ``candidate``...) points now. History is in :class:`AliasEvent`."""

    __tablename__ = "model_aliases"
    __table_args__ = (
        UniqueConstraint("name", "alias", name="uq_model_aliases_name_alias"),
        ForeignKeyConstraint(
            ["name", "version"],
            ["model_versions.name", "model_versions.version"],
            name="fk_model_aliases_version_model_versions",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    alias: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AliasEvent(Base):
    """Append-only: every alias move, so "which version was production on day X" has an answer."""

    __tablename__ = "alias_events"
    __table_args__ = (Index("ix_alias_events_lookup", "name", "alias", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    alias: Mapped[str] = mapped_column(String(64))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: alias removed
    who: Mapped[str] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")
