"""The NLU tables match their migration, and the package exports what it says."""

from __future__ import annotations

from gpt2_agent.store import Database


def test_migration_matches_the_tables(database: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from gpt2_agent.store import Base, tables  # noqa: F401  (registers every table)

    mine = {"conversations", "conversation_turns"}
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if any(f"'{t}'" in repr(d) for t in mine)] == []


def test_exported_members_are_sorted_and_complete() -> None:
    import gpt2_agent.nlu as nlu

    assert nlu.__all__ == sorted(nlu.__all__)
    assert all(hasattr(nlu, name) for name in nlu.__all__)
