"""Persistence: SQLAlchemy tables, sessions and Alembic migrations (SQLite or PostgreSQL)."""

from gpt2_agent.store.base import Base, utcnow
from gpt2_agent.store.db import Database, create_database, open_database
from gpt2_agent.store.migrate import upgrade

__all__ = ["Base", "Database", "create_database", "open_database", "upgrade", "utcnow"]
