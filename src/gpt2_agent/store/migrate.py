"""Apply Alembic migrations programmatically (on start, and from tests).

Each part has its own Alembic branch (``branch_labels``) so parts can add tables
independently; ``upgrade`` always goes to all ``heads``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from gpt2_agent.store.db import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(db: Database) -> Config:
    """An Alembic config bound to ``db``'s engine (no ini file needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = db.engine
    return cfg


def upgrade(db: Database, revision: str = "heads") -> None:
    """Bring the schema up to date."""
    command.upgrade(alembic_config(db), revision)
