"""dispatch tables: task_dispatch (what the Celery executor published)

Revision ID: dispatch_0001
Revises:
Depends on: engine_0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gpt2_agent.store.base

revision: str = "dispatch_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("dispatch",)
# The table references tasks.id, so the engine's tables must exist first.
depends_on: str | Sequence[str] | None = "engine_0001"


def upgrade() -> None:
    """Create the task_dispatch table."""
    op.create_table(
        "task_dispatch",
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("published_at", gpt2_agent.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("publications", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_task_dispatch_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_task_dispatch")),
    )


def downgrade() -> None:
    """Drop the task_dispatch table."""
    op.drop_table("task_dispatch")
