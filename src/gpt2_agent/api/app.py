"""``create_app(settings)``: the composition root. Builds the store, engine, actions and routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import cast

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry

import gpt2_agent
from gpt2_agent.actions.feedback import install_feedback
from gpt2_agent.actions.gate import GateDecision, GateFeatures, ThresholdGate
from gpt2_agent.actions.order_registration import register_order_actions
from gpt2_agent.actions.registration import register_model_free_actions
from gpt2_agent.actions.storage import FileService, Storage
from gpt2_agent.api import errors
from gpt2_agent.api.middleware import BodyLimitMiddleware, JsonNulMiddleware
from gpt2_agent.api.plugins import load_plugins
from gpt2_agent.api.routes import (
    approvals,
    files,
    health,
    keys,
    me,
    models,
    nlu,
    orders,
    predict,
    runs,
    stats,
    tasks,
    training,
)
from gpt2_agent.api.training_jobs import train_task
from gpt2_agent.config import Settings, load_settings
from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.executors import Executor, load_executor
from gpt2_agent.engine.metrics import EngineMetrics
from gpt2_agent.nlu.dialogue import DialogueManager, EngineLike
from gpt2_agent.nlu.service import NluService
from gpt2_agent.registry import Registry
from gpt2_agent.rl.gate import LearnedGate, load_gate
from gpt2_agent.serving import ServingRuntime
from gpt2_agent.store import Database, open_database, upgrade

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
# Models the product itself serves, with the command that trains each (quoted in 503 answers).
SERVED_MODELS = {
    "order-audit": "gpt2-agent train configs/order-audit.tiny.toml --promote",
    "nlu": "gpt2-agent train configs/nlu.tiny.toml --promote",
}


@dataclass
class Components:
    """Everything the server and the workers share, built once per process."""

    engine: Engine
    metrics_registry: CollectorRegistry
    registry: Registry
    runtime: ServingRuntime
    gate: LearnedGate  # the order actions' automation gate (learned policy or the thresholds)

    def close(self) -> None:
        # The gate opens nothing of its own: it reads through the registry and this database.
        self.runtime.close()
        self.engine.db.dispose()


class OrderGate:
    """The rl package's gate as the order actions' ``AutomationGate``.

    rl may not import actions, so its decisions are a mirror class with the same fields; this
    turns them into the actions' own :class:`GateDecision`.
    """

    def __init__(self, gate: LearnedGate) -> None:
        self.gate = gate

    def decide(self, features: GateFeatures) -> GateDecision:
        """The learned gate's decision (or its threshold fallback's)."""
        d = self.gate.decide(features)
        return GateDecision(d.action, d.reason, d.policy_version, d.propensity)


def build_gate(settings: Settings, registry: Registry, db: Database) -> LearnedGate:
    """The automation gate: the production ``gate_policy_model`` when one is promoted (hot-reloaded,
    under the hard rules), else exactly the threshold gate of each workflow.

    Serving a policy reads plain tensors (safetensors + JSON): Stable-Baselines3 and Gymnasium
    are loaded only by training, never here.
    """
    # One ThresholdGate per workflow, built on first use (as GateService does without a gate), so
    # a bad per-workflow override fails that workflow's decisions, not the server start.
    thresholds = cache(lambda workflow: ThresholdGate.from_settings(settings, workflow))
    return load_gate(settings, registry, fallback=thresholds, db=db, online=settings.gate_online_learning)


def build_components(settings: Settings, db: Database | None = None) -> Components:
    """The engine with every shipped action, workflow and plugin registered (no HTTP involved)."""
    db = db or open_database(settings)
    upgrade(db)
    metrics_registry = CollectorRegistry()
    metrics = EngineMetrics(metrics_registry)
    engine = Engine(db, settings, metrics=metrics)
    metrics.add_state_counts(engine.state_counts)
    model_registry = Registry(settings, db)
    runtime = ServingRuntime(settings, model_registry, train_hints=SERVED_MODELS)
    register_model_free_actions(engine.handlers, settings, db)
    gate = build_gate(settings, model_registry, db)
    register_order_actions(engine.handlers, settings, db, runtime, gate=OrderGate(gate))
    install_feedback(engine)
    engine.handlers.register(train_task(settings))
    shipped = resources.files("gpt2_agent") / "workflows"
    if shipped.is_dir():
        engine.workflows.load_dir(Path(str(shipped)))
    if settings.workflows_dir is not None:
        engine.workflows.load_dir(settings.workflows_dir)
    load_plugins(engine, settings)
    return Components(engine, metrics_registry, model_registry, runtime, gate)


def build_engine(settings: Settings, db: Database | None = None) -> tuple[Engine, CollectorRegistry]:
    """:func:`build_components`, for callers that need only the engine and its metrics."""
    parts = build_components(settings, db)
    return parts.engine, parts.metrics_registry


def create_app(settings: Settings | None = None, *, start_executor: bool = True) -> FastAPI:
    """Build the FastAPI app. The local executor runs inside it unless ``start_executor`` is False."""
    settings = settings or load_settings()
    parts = build_components(settings)
    engine = parts.engine
    executor: Executor | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal executor
        if start_executor and settings.executor == "local":
            executor = load_executor("local", engine)
            executor.start()
        elif settings.executor != "local":
            executor = load_executor(settings.executor, engine)  # publishes only; workers run elsewhere
            executor.start()
        try:
            yield
        finally:
            if executor is not None:
                executor.stop(wait=False)
            parts.close()

    app = FastAPI(
        title="GPT-2 Agent",
        version=gpt2_agent.__version__,
        description="Business-process automation with GPT-2 models trained on your own data.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.db = engine.db
    app.state.metrics_registry = parts.metrics_registry
    app.state.files = FileService(engine.db, Storage(settings.storage_path), settings)
    app.state.registry = parts.registry
    app.state.runtime = parts.runtime
    app.state.gate = parts.gate
    app.state.served_models = SERVED_MODELS
    app.state.nlu = NluService(settings, engine.db, parts.registry)
    # nlu may not import the engine, so its protocol is written loosely (keyword arguments);
    # the engine provides every method it calls.
    app.state.dialogue = DialogueManager(settings, engine.db, app.state.nlu, cast(EngineLike, engine))

    api = APIRouter(prefix=API_PREFIX)
    for module in (tasks, runs, approvals, files, keys, me, models, predict, stats, training, nlu):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(health.router)
    app.include_router(orders.router)
    errors.install(app)
    app.add_middleware(JsonNulMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        upload_max_bytes=settings.max_upload_bytes + 64 * 1024,
        upload_prefixes=(f"{API_PREFIX}/files",),
    )
    _install_web(app)
    return app


def _install_web(app: FastAPI) -> None:
    """Mount the web console when its package is present (it talks to the API over HTTP only)."""
    try:
        from gpt2_agent import web
    except ImportError:
        return
    install = getattr(web, "install", None)
    if callable(install):
        install(app)
