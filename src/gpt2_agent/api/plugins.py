"""Plugins: modules named in ``settings.plugins`` that register their own task types and workflows.

A plugin module defines ``register(engine: Engine, settings: Settings) -> None``.
"""

from __future__ import annotations

import importlib

from gpt2_agent.config import Settings
from gpt2_agent.engine.core import Engine


class PluginError(RuntimeError):
    pass


def load_plugins(engine: Engine, settings: Settings) -> None:
    for name in settings.plugins:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise PluginError(f"cannot import plugin {name!r}: {exc}") from None
        register = getattr(module, "register", None)
        if not callable(register):
            raise PluginError(f"plugin {name!r} has no register(engine, settings) function")
        register(engine, settings)
