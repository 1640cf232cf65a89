"""A plugin for real-process tests: registers the order actions and the approvals feedback.

Loaded with ``GPT2_AGENT_PLUGINS='["tests.orders.plugin"]'``. Where the application already
registers the order actions itself, only the feedback listener is (idempotently) installed.
"""

from __future__ import annotations

from gpt2_agent.actions.feedback import install_feedback
from gpt2_agent.actions.order_registration import register_order_actions
from gpt2_agent.config import Settings
from gpt2_agent.engine.core import Engine
from gpt2_agent.registry import Registry
from gpt2_agent.serving import ServingRuntime


def register(engine: Engine, settings: Settings) -> None:
    if "order_audit" not in engine.handlers:
        runtime = ServingRuntime(settings, Registry(settings, engine.db), reload_interval_s=0, dtype="fp32")
        register_order_actions(engine.handlers, settings, engine.db, runtime)
    install_feedback(engine)
