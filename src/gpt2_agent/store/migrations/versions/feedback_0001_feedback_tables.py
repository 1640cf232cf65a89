"""feedback tables: gate_decisions, feedback

Revision ID: feedback_0001
Revises:
Create Date: 2026-11-29 09:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gpt2_agent.store.base

# revision identifiers, used by Alembic.
revision: str = "feedback_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("feedback",)
# Rows point at runs, tasks and approvals, so the engine's tables must exist first.
depends_on: str | Sequence[str] | None = ("engine_0001",)

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTCDateTime = gpt2_agent.store.base.UTCDateTime


def upgrade() -> None:
    """Create the gate decision log and the approvals feedback table."""
    op.create_table(
        "gate_decisions",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=300), nullable=False),
        sa.Column("run_id", BigId, nullable=True),
        sa.Column("task_id", BigId, nullable=True),
        sa.Column("workflow", sa.String(length=200), nullable=True),
        sa.Column("order_no", sa.String(length=16), nullable=True),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("policy_version", sa.String(length=200), nullable=False),
        sa.Column("propensity", sa.Float(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["workflow_runs.id"], name=op.f("fk_gate_decisions_run_id_workflow_runs")
        ),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_gate_decisions_task_id_tasks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_decisions")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_gate_decisions_idempotency_key")),
    )
    with op.batch_alter_table("gate_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gate_decisions_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_gate_decisions_order_no"), ["order_no"], unique=False)
        batch_op.create_index(batch_op.f("ix_gate_decisions_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_gate_decisions_workflow"), ["workflow"], unique=False)

    op.create_table(
        "feedback",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("approval_id", BigId, nullable=False),
        sa.Column("run_id", BigId, nullable=False),
        sa.Column("workflow", sa.String(length=200), nullable=False),
        sa.Column("step_name", sa.String(length=200), nullable=False),
        sa.Column("order_no", sa.String(length=16), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("recommendation", sa.String(length=16), nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("gate_action", sa.String(length=16), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=False),
        sa.Column("decided_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["approval_id"], ["approvals.id"], name=op.f("fk_feedback_approval_id_approvals")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["workflow_runs.id"], name=op.f("fk_feedback_run_id_workflow_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("approval_id", name=op.f("uq_feedback_approval_id")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_feedback_order_no"), ["order_no"], unique=False)
        batch_op.create_index(batch_op.f("ix_feedback_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    """Drop the feedback tables."""
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_run_id"))
        batch_op.drop_index(batch_op.f("ix_feedback_order_no"))
        batch_op.drop_index(batch_op.f("ix_feedback_created_at"))
    op.drop_table("feedback")
    with op.batch_alter_table("gate_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gate_decisions_workflow"))
        batch_op.drop_index(batch_op.f("ix_gate_decisions_run_id"))
        batch_op.drop_index(batch_op.f("ix_gate_decisions_order_no"))
        batch_op.drop_index(batch_op.f("ix_gate_decisions_created_at"))
    op.drop_table("gate_decisions")
