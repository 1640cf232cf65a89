"""What the Celery executor sent to the broker: one row per task, rewritten at every publication.

The ``tasks`` table is the outbox: a queued, due task whose row here does not match its current
attempt (or whose message is old) still needs a message. Nothing here is the truth about a task;
losing this table only causes a re-publication, and duplicates are harmless (claims are fenced).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gpt2_agent.store.base import Base, UTCDateTime
from gpt2_agent.store.engine_tables import BigId


class TaskDispatch(Base):
    """The last message published for a task.

    ``attempt`` is the task's attempt counter when the message was sent: it only grows when a worker
    claims the task, so a requeued task (retry, expired lease) no longer matches and is published
    again. ``published_at`` is NULL while a publication is known to have failed.
    """

    __tablename__ = "task_dispatch"

    task_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    attempt: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(200))
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    publications: Mapped[int] = mapped_column(Integer, default=1)
