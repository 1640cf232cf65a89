"""Imports every part's table module so ``Base.metadata`` is complete (for Alembic and tests)."""

from gpt2_agent.store import (
    engine_tables,  # noqa: F401
    registry_tables,  # noqa: F401
)
