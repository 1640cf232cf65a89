"""payments tables: order_payments

Revision ID: payments_0001
Revises:
Create Date: 2026-11-29 09:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gpt2_agent.store.base

# revision identifiers, used by Alembic.
revision: str = "payments_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("payments",)
# Rows point at runs and tasks, so the engine's tables must exist first.
depends_on: str | Sequence[str] | None = ("engine_0001",)

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTCDateTime = gpt2_agent.store.base.UTCDateTime


def upgrade() -> None:
    """Create the payment ledger."""
    op.create_table(
        "order_payments",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=300), nullable=False),
        sa.Column("run_id", BigId, nullable=True),
        sa.Column("task_id", BigId, nullable=True),
        sa.Column("order_no", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("gateway", sa.String(length=100), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.Column("charged_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["workflow_runs.id"], name=op.f("fk_order_payments_run_id_workflow_runs")
        ),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_order_payments_task_id_tasks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_payments")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_order_payments_idempotency_key")),
    )
    with op.batch_alter_table("order_payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_payments_order_no"), ["order_no"], unique=False)
        batch_op.create_index(batch_op.f("ix_order_payments_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    """Drop the payment ledger."""
    with op.batch_alter_table("order_payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_payments_run_id"))
        batch_op.drop_index(batch_op.f("ix_order_payments_order_no"))
    op.drop_table("order_payments")
