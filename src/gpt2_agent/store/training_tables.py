"""Tables of training: one row per training run, and its metrics (one row per step, split, name).

``training_runs.status`` moves ``queued → running → succeeded | failed | cancelled``;
``registered_version`` is filled when the run's model entered the registry. The helpers below
are the only writers, so the trainer's callbacks and the pipeline agree on the shape.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text, delete, insert
from sqlalchemy.orm import Mapped, mapped_column

from gpt2_agent.store.base import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from gpt2_agent.store.db import Database

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
BigId = BigInteger().with_variant(Integer(), "sqlite")

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


class TrainingRun(Base):
    """One training run: its config snapshot, where it stands, and what it produced."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32), index=True, default="queued")
    model_name: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    registered_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    output_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # final evaluation
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TrainingMetric(Base):
    """One value of one metric at one step (``split`` is ``train`` or ``val``)."""

    __tablename__ = "training_metrics"
    __table_args__ = (Index("ix_training_metrics_run_step", "run_id", "step"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    split: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


def create_run(db: Database, *, name: str, config: dict[str, Any], model_name: str | None = None) -> int:
    """Insert a ``queued`` run; returns its id."""
    with db.write_session() as s:
        run = TrainingRun(
            name=name, config=config, status="queued", model_name=model_name, created_at=utcnow()
        )
        s.add(run)
        s.flush()
        return int(run.id)


def update_run(db: Database, run_id: int, **fields: Any) -> None:
    """Set columns of a run (``status``, ``error``, ``metrics``, ``registered_version``...).

    Moving to ``running`` stamps ``started_at``; to a final status stamps ``finished_at``.
    """
    status = fields.get("status")
    if status is not None and status not in RUN_STATUSES:
        raise ValueError(f"unknown run status {status!r} (known: {', '.join(RUN_STATUSES)})")
    with db.write_session() as s:
        run = s.get(TrainingRun, run_id)
        if run is None:
            raise KeyError(f"training run {run_id} does not exist")
        for key, value in fields.items():
            setattr(run, key, value)
        if status == "running" and run.started_at is None:
            run.started_at = utcnow()
        if status in ("succeeded", "failed", "cancelled"):
            run.finished_at = utcnow()


def add_metrics(db: Database, run_id: int, rows: Iterable[tuple[int, str, str, float]]) -> None:
    """Insert ``(step, split, name, value)`` rows for ``run_id`` in one statement."""
    now = utcnow()
    values = [
        {"run_id": run_id, "step": step, "split": split, "name": name, "value": value, "at": now}
        for step, split, name, value in rows
    ]
    if values:
        with db.write_session() as s:
            s.execute(insert(TrainingMetric), values)


def delete_metrics_after(db: Database, run_id: int, step: int) -> None:
    """Drop the rows a killed run wrote after the checkpoint it resumes from."""
    with db.write_session() as s:
        s.execute(delete(TrainingMetric).where(TrainingMetric.run_id == run_id, TrainingMetric.step > step))


__all__ = [
    "RUN_STATUSES",
    "TrainingMetric",
    "TrainingRun",
    "add_metrics",
    "create_run",
    "delete_metrics_after",
    "update_run",
]
