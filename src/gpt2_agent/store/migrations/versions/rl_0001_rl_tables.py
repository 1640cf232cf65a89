"""rl tables: gate_outcomes, gate_outcome_rejects

Revision ID: rl_0001
Revises:
Create Date: 2026-12-01 09:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gpt2_agent.store.base

# revision identifiers, used by Alembic.
revision: str = "rl_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("rl",)
# Outcomes point at gate decisions, so the feedback tables must exist first.
depends_on: str | Sequence[str] | None = ("feedback_0001",)

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTCDateTime = gpt2_agent.store.base.UTCDateTime


def upgrade() -> None:
    """Create the outcome table of gate decisions and the table of rejected feedback."""
    op.create_table(
        "gate_outcomes",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("decision_id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=32), nullable=False),
        sa.Column("source_table", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=200), nullable=False),
        sa.Column("observed_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["gate_decisions.id"], name=op.f("fk_gate_outcomes_decision_id_gate_decisions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_outcomes")),
        sa.UniqueConstraint("decision_id", "kind", name="uq_gate_outcomes_decision_id_kind"),
        sa.UniqueConstraint("source_table", "source_id", name="uq_gate_outcomes_source_table_source_id"),
    )
    with op.batch_alter_table("gate_outcomes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gate_outcomes_decision_id"), ["decision_id"], unique=False)

    op.create_table(
        "gate_outcome_rejects",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source_table", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_outcome_rejects")),
        sa.UniqueConstraint(
            "source_table", "source_id", name="uq_gate_outcome_rejects_source_table_source_id"
        ),
    )
    with op.batch_alter_table("gate_outcome_rejects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gate_outcome_rejects_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    """Drop the rl tables."""
    with op.batch_alter_table("gate_outcome_rejects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gate_outcome_rejects_created_at"))
    op.drop_table("gate_outcome_rejects")
    with op.batch_alter_table("gate_outcomes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gate_outcomes_decision_id"))
    op.drop_table("gate_outcomes")
