"""Imports every part's table module so ``Base.metadata`` is complete (for Alembic and tests)."""

from gpt2_agent.store import (
    dispatch_tables,  # noqa: F401
    engine_tables,  # noqa: F401
    feedback_tables,  # noqa: F401
    nlu_tables,  # noqa: F401
    payments_tables,  # noqa: F401
    registry_tables,  # noqa: F401
    rl_tables,  # noqa: F401
    training_tables,  # noqa: F401
)
