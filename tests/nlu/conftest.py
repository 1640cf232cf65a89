"""The NLU tests use ``tiny_nlu`` from ``tests/conftest.py`` (one tiny model per session)."""
