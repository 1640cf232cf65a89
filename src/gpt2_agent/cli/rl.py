"""``gpt2-agent rl``: train, evaluate and promote the gate's policy, show what the gate costs;
``gpt2-agent retrain order-audit --from-feedback``: teach the audit model the reviewers' habits.

Mounting (in ``cli/main.py``)::

    from gpt2_agent.cli import rl
    app.add_typer(rl.app, name="rl")
    app.command("retrain")(rl.retrain)

Commands (all take ``--json``)::

    gpt2-agent rl costs                         the cost model and hard rules in force
    gpt2-agent rl train --learner q_learning    train a policy (demo order stream or the feedback log)
    gpt2-agent rl evaluate [VERSION]            off-policy estimates on the feedback log
    gpt2-agent rl promote VERSION               production, through the promotion gate
    gpt2-agent rl chargebacks                   demo: label logged decisions with the delayed fraud truth
    gpt2-agent retrain order-audit --from-feedback

The functions above the commands (:func:`audit_scorer`, :func:`demo_stream`,
:func:`register_policy`...) are the composition the commands and ``bench/rl.py`` share: the
``rl`` package itself knows neither the training code, the demo company nor the registry.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from gpt2_agent.cli.common import JsonOpt, console, fail, print_json
from gpt2_agent.config import Settings, load_settings

if TYPE_CHECKING:
    from gpt2_agent.registry import Registry, VersionInfo
    from gpt2_agent.rl.ope import LoggedData, OPEReport
    from gpt2_agent.rl.policies import Policy
    from gpt2_agent.rl.stream import OrderStream, Scorer
    from gpt2_agent.store import Database

log = logging.getLogger(__name__)

app = typer.Typer(help="Learn when to automate: the automation gate's policy.", no_args_is_help=True)

AUDIT_MODEL = "order-audit"
POLICY_METRIC = "min:cost_per_order"
LEARNERS = ("q_learning", "sarsa", "dqn", "a2c", "ppo")
MIN_LOG = 30  # decisions with known outcomes below which the log is too thin to judge a policy


# --- composition -----------------------------------------------------------------------------------


def audit_scorer(
    settings: Settings, db: Database, *, model: str = AUDIT_MODEL
) -> tuple[Scorer, int, str | None]:
    """A scorer backed by the serving runtime and the production version of the audit model.

    Returns ``(scorer, version, template)``; the template is the one the version was trained with
    (None: the default), so stream texts are serialized as the model read them in training.
    """
    from gpt2_agent.actions.order_audit import approve_probability
    from gpt2_agent.registry import Registry
    from gpt2_agent.serving import ServingRuntime

    registry = Registry(settings, db)
    version = registry.resolve(model)  # production; NotFound says what is missing
    template = ((version.lineage.get("config") or {}).get("data") or {}).get("template")
    runtime = ServingRuntime(settings, registry, reload_interval_s=0, max_batch_size=64, max_wait_ms=0.0)

    def score(texts: Sequence[str]) -> list[float]:
        return [approve_probability(p) for p in runtime.predict(model, list(texts))]

    return score, version.version, template


def demo_truth(warehouse_url: str, keys: Sequence[str], amounts: Sequence[float], *, seed: int = 0) -> Any:
    """The demo's delayed fraud label for ``keys``: the reviewers' hidden decision *before* label
    noise (``reject XOR noise_flipped`` of :func:`gpt2_agent.demo.company.build_company`).

    The generator is re-run with ``seed`` and the warehouse's order count; if its orders do not
    match the warehouse's (another seed, or not a demo warehouse), returns None and callers fall
    back to the reviewers' decisions as the truth.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from gpt2_agent.demo.company import build_company

    url = make_url(warehouse_url)
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            n = int(conn.execute(text("SELECT count(*) FROM orders")).scalar_one())
    finally:
        engine.dispose()
    try:
        company = build_company(n, seed=seed)
    except ValueError:
        return None
    index = {no: i for i, no in enumerate(company.order_no)}
    rows = [index.get(str(k)) for k in keys]
    if any(i is None for i in rows):
        return None
    idx = np.asarray(rows, dtype=np.int64)
    if not np.allclose(company.amount_cents[idx] / 100.0, np.asarray(amounts, dtype=np.float64), atol=0.005):
        return None
    return np.asarray((company.reject ^ company.noise_flipped)[idx], dtype=bool)


def demo_stream(
    settings: Settings,
    db: Database,
    *,
    orders: int | None = None,
    warehouse_url: str | None = None,
    demo_seed: int = 0,
    scorer: Scorer | None = None,
    template: str | None = None,
) -> OrderStream:
    """The warehouse's decided orders (oldest first, at most ``orders``) scored once by the audit
    model, with the demo's fraud truth when the warehouse is a demo one (else the reviewers').

    An escalated order is settled by a person: with the demo's truth known, the reviewer is taken
    to decide it right (their recorded decisions carry the demo's label noise, which is what the
    audit model learned from, not what a careful review of a live order does).
    """
    from gpt2_agent.rl.stream import OrderStream, StreamOrder
    from gpt2_agent.training.data.audit_dataset import APPROVE, FEATURE_NAMES, load_audit_dataset

    url = warehouse_url or settings.warehouse_url
    if scorer is None:
        scorer, version, template = audit_scorer(settings, db)
        source = f"{AUDIT_MODEL}:{version}"
    else:
        source = "scorer"
    records = load_audit_dataset(url, template=template, limit=orders)
    if not records:
        raise ValueError(f"the warehouse at {url} has no decided orders")
    keys = [r.key for r in records]
    amounts = [float(r.features[0]) for r in records]
    truth = demo_truth(url, keys, amounts, seed=demo_seed)
    if truth is None:
        log.info("not a demo warehouse of seed %s: the reviewers' decisions stand for the truth", demo_seed)
    items = [
        StreamOrder(
            key=r.key,
            text=r.text,
            amount=amounts[i],
            features=dict(zip(FEATURE_NAMES, r.features, strict=True)),
            # A review settles the order: with the demo's truth known, the person decides right.
            reviewer_approves=(r.label == APPROVE) if truth is None else not bool(truth[i]),
            bad=None if truth is None else bool(truth[i]),
        )
        for i, r in enumerate(records)
    ]
    label = "demo truth" if truth is not None else "reviewers"
    return OrderStream.from_orders(
        items, scorer, source=f"{len(items)} orders scored by {source}; labels: {label}"
    )


def train_policy(
    learner: str,
    stream: OrderStream,
    settings: Settings,
    *,
    seed: int = 0,
    timesteps: int | None = None,
) -> tuple[Policy, dict[str, Any]]:
    """Train ``learner`` online over ``stream`` (one pass, or ``timesteps`` orders for SB3) and
    return the greedy policy (exploration bounded by the settings) with training notes."""
    from gpt2_agent.rl.costs import CostModel
    from gpt2_agent.rl.online import run_sb3, run_tabular
    from gpt2_agent.rl.safety import HardRules
    from gpt2_agent.rl.sb3 import export
    from gpt2_agent.rl.tabular import TabularConfig, TabularLearner

    costs, rules = CostModel.from_settings(settings), HardRules.from_settings(settings)
    if learner in ("q_learning", "sarsa"):
        tab = TabularLearner(
            config=TabularConfig(
                method=learner,  # type: ignore[arg-type]
                epsilon_min=settings.gate_explore_min,
                epsilon_max=settings.gate_explore_max,
            ),
            prior=costs,
        )
        run = run_tabular(tab, stream, costs, rules, seed=seed, name=learner)
        policy: Policy = tab.policy
    elif learner in ("dqn", "a2c", "ppo"):
        target = stream
        if timesteps is not None and timesteps < len(stream):
            target = stream.slice(0, timesteps)
        run, model = run_sb3(learner, target, costs, rules, seed=seed, name=learner)
        policy = export(model, epsilon=settings.gate_explore_min)
    else:
        raise ValueError(f"unknown learner {learner!r}; use one of {list(LEARNERS)}")
    notes = {
        "learner": learner,
        "orders": len(run.costs),
        "online_cost_per_order": run.cost_per_order,
        "online_automation_rate": run.automation_rate,
        "stream": stream.source,
        "stream_fingerprint": stream.fingerprint(),
        "seconds": round(run.seconds, 2),
    }
    return policy, notes


def log_hash(data: LoggedData) -> str:
    """The identity of a logged data set (which decisions, with which costs)."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(data.keys).encode())
    digest.update(np.ascontiguousarray(data.cost).tobytes())
    return "log:" + digest.hexdigest()


def evaluate_on_log(policy: Policy, data: LoggedData, settings: Settings) -> OPEReport:
    """Off-policy estimates of ``policy`` on logged decisions."""
    from gpt2_agent.rl.costs import CostModel
    from gpt2_agent.rl.ope import evaluate_offline
    from gpt2_agent.rl.safety import HardRules

    return evaluate_offline(
        policy, data, HardRules.from_settings(settings), prior=CostModel.from_settings(settings)
    )


def register_policy(
    settings: Settings,
    registry: Registry,
    policy: Policy,
    *,
    metrics: dict[str, Any],
    eval_set_hash: str | None,
    meta: dict[str, Any],
    created_by: str = "rl",
) -> VersionInfo:
    """Save ``policy`` as an artifact and register it as the next ``candidate`` of the gate model."""
    import tempfile

    from gpt2_agent.rl.artifact import save_policy
    from gpt2_agent.rl.costs import CostModel
    from gpt2_agent.rl.safety import HardRules

    name = settings.gate_policy_model
    with tempfile.TemporaryDirectory(dir=settings.home if settings.home.is_dir() else None) as tmp:
        folder = save_policy(
            policy,
            Path(tmp) / "policy",
            meta={
                **meta,
                "cost_model": CostModel.from_settings(settings).as_dict(),
                "hard_rules": HardRules.from_settings(settings).as_dict(),
            },
        )
        info = registry.register(
            folder,
            name,
            task="policy",
            description="The automation gate's learned policy (gpt2-agent rl train).",
            metrics=metrics,
            lineage={"dataset_hash": eval_set_hash, "config": meta},
            eval_set_hash=eval_set_hash,
            created_by=created_by,
        )
    if registry.get_model(name).metric != POLICY_METRIC:
        registry.configure_model(name, metric=POLICY_METRIC)
    registry.set_alias(
        name, "candidate", info.version, by=created_by, reason=f"rl train ({meta.get('learner')})"
    )
    return info


def promote_policy(
    settings: Settings,
    db: Database,
    version: int,
    *,
    by: str = "cli",
    force: bool = False,
    min_ess: float = 30.0,
) -> dict[str, Any]:
    """Make policy ``version`` the production gate policy through the registry's promotion gate.

    The gate compares ``cost_per_order`` on the same evaluation set. When the two versions were
    evaluated on different snapshots of the feedback log, both are re-evaluated (doubly robust)
    on the current log and the candidate moves only if it is cheaper there, the log is large
    enough and the estimate rests on at least ``min_ess`` effectively used decisions; the alias
    history records both numbers.
    """
    from gpt2_agent.registry import PRODUCTION, PromotionRefused, Registry
    from gpt2_agent.rl.artifact import load_policy
    from gpt2_agent.rl.costs import CostModel
    from gpt2_agent.rl.feedback_log import FeedbackLog

    registry = Registry(settings, db)
    name = settings.gate_policy_model
    try:
        return registry.promote(name, version, by=by, force=force, metric=POLICY_METRIC).to_dict()
    except PromotionRefused as exc:
        if "eval set" not in str(exc):
            raise
        first = exc
    holder = registry.alias_version(name, PRODUCTION)
    feedback = FeedbackLog(db, CostModel.from_settings(settings))
    feedback.ingest()
    data = feedback.logged_data()
    if len(data) < MIN_LOG:
        raise PromotionRefused(
            f"{first}; the feedback log has {len(data)} decisions with known outcomes (need {MIN_LOG})"
        )
    candidate_policy, _ = load_policy(registry.get_version(name, version).path)
    assert holder is not None
    holder_policy, _ = load_policy(registry.get_version(name, holder).path)
    new = evaluate_on_log(candidate_policy, data, settings)
    old = evaluate_on_log(holder_policy, data, settings)
    summary = (
        f"re-evaluated on {log_hash(data)[:16]} ({len(data)} decisions, doubly robust): v{version} "
        f"{new.dr.value:.4f} (ESS {new.dr.ess:.0f}) vs v{holder} {old.dr.value:.4f}"
    )
    if not force and (new.dr.value >= old.dr.value or new.dr.ess < min_ess):
        raise PromotionRefused(f"refused: {summary}; use force to override")
    return registry.promote(name, version, by=by, force=True, metric=POLICY_METRIC, reason=summary).to_dict()


# --- commands --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    from sqlalchemy.exc import SQLAlchemyError

    from gpt2_agent.registry import RegistryError
    from gpt2_agent.rl.artifact import PolicyArtifactError
    from gpt2_agent.rl.costs import CostModelError
    from gpt2_agent.rl.ope import OPEError

    try:
        yield
    except (RegistryError, PolicyArtifactError, CostModelError, OPEError) as exc:
        fail(escape(str(exc)), 2)
    except SQLAlchemyError as exc:
        fail(escape(f"database error: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"))
    except (OSError, ValueError) as exc:
        fail(escape(str(exc)), 2)


def _settings() -> Settings:
    try:
        return load_settings()
    except ValueError as exc:  # pydantic names the field (a negative cost, say)
        fail(escape(f"invalid settings: {exc}"), 2)


@app.command()
def costs(as_json: JsonOpt = False) -> None:
    """Show the cost model and hard rules the gate works with (what the business pays)."""
    from gpt2_agent.rl.costs import CostModel
    from gpt2_agent.rl.safety import HardRules

    settings = _settings()
    with _errors():
        model = CostModel.from_settings(settings)
        rules = HardRules.from_settings(settings)
    examples = [
        {
            "amount": a,
            "wrong_approval": float(model.wrong_approval(a)),
            "wrong_rejection": float(model.wrong_rejection(a)),
            "review": model.review_cost,
        }
        for a in (100.0, 300.0, 500.0, 1000.0)
    ]
    out = {
        "costs": model.as_dict(),
        "examples": examples,
        "hard_rules": rules.as_dict(),
        "exploration": {"min": settings.gate_explore_min, "max": settings.gate_explore_max},
        "policy_model": settings.gate_policy_model,
    }
    if as_json:
        print_json(out)
        return
    table = Table("setting", "value", title="Gate cost model (rewards are the negative costs)")
    table.add_row("review by a person", f"{model.review_cost:g}")
    table.add_row(
        "wrong approval (chargeback)",
        f"{model.wrong_approval_fixed:g} + {model.wrong_approval_rate:g} x amount",
    )
    table.add_row(
        "wrong rejection (lost sale)",
        f"{model.wrong_rejection_fixed:g} + {model.wrong_rejection_rate:g} x amount",
    )
    table.add_row("never auto-approve above", str(rules.max_amount))
    table.add_row("escalate when the model's p is in", f"[{rules.unsure_min:g}, {rules.unsure_max:g}]")
    table.add_row(
        "exploration (escalations)", f"{settings.gate_explore_min:g} to {settings.gate_explore_max:g}"
    )
    console.print(table)
    ex = Table("amount", "wrong approval", "wrong rejection", "review", title="What one mistake costs")
    for e in examples:
        ex.add_row(
            f"{e['amount']:.2f}",
            f"{e['wrong_approval']:.2f}",
            f"{e['wrong_rejection']:.2f}",
            f"{e['review']:.2f}",
        )
    console.print(ex)


@app.command()
def train(
    learner: Annotated[
        str, typer.Option("--learner", help="q_learning | sarsa | dqn | a2c | ppo")
    ] = "q_learning",
    source: Annotated[
        str, typer.Option("--source", help="demo: the warehouse's order stream; log: the feedback log")
    ] = "demo",
    orders: Annotated[
        int | None, typer.Option("--orders", min=10, help="Orders of the stream (default: all decided)")
    ] = None,
    timesteps: Annotated[
        int | None, typer.Option("--timesteps", min=1, help="SB3: orders to train on")
    ] = None,
    demo_seed: Annotated[
        int, typer.Option("--demo-seed", help="Seed the demo warehouse was generated with")
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Exploration and network seed")] = 0,
    register: Annotated[bool, typer.Option("--register/--no-register", help="Register as candidate")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Train a gate policy and register it as the candidate, with its off-policy estimate."""
    if learner not in LEARNERS:
        fail(f"--learner must be one of {', '.join(LEARNERS)}", 2)
    if source not in ("demo", "log"):
        fail("--source must be demo or log", 2)
    if source == "log" and learner not in ("q_learning", "sarsa"):
        fail(
            "--source log trains the tabular learners (q_learning, sarsa); SB3 learners need the demo stream",
            2,
        )
    from gpt2_agent.registry import Registry
    from gpt2_agent.rl.costs import CostModel
    from gpt2_agent.rl.feedback_log import FeedbackLog
    from gpt2_agent.store import open_database

    settings = _settings()
    with _errors():
        db = open_database(settings)
        try:
            feedback = FeedbackLog(db, CostModel.from_settings(settings))
            feedback.ingest()
            data = feedback.logged_data()
            if source == "demo":
                stream = demo_stream(settings, db, orders=orders, demo_seed=demo_seed)
                policy, notes = train_policy(learner, stream, settings, seed=seed, timesteps=timesteps)
            else:
                policy, notes = _train_from_log(learner, feedback, settings)
            metrics, eval_hash = _policy_metrics(policy, data, notes, settings)
            out: dict[str, Any] = {
                "learner": learner,
                "source": source,
                "metrics": metrics,
                "training": notes,
            }
            if register:
                info = register_policy(
                    settings,
                    Registry(settings, db),
                    policy,
                    metrics=metrics,
                    eval_set_hash=eval_hash,
                    meta=notes,
                )
                out["registered"] = info.ref
        finally:
            db.dispose()
    if as_json:
        print_json(out)
        return
    table = Table("metric", "value", title=f"Gate policy ({learner}, from the {source})")
    for key, value in metrics.items():
        if isinstance(value, (int, float)):
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        elif isinstance(value, str):
            table.add_row(key, value)
    console.print(table)
    if "registered" in out:
        console.print(
            f"Registered as {out['registered']} (alias candidate). Promote: gpt2-agent rl promote <version>"
        )


def _train_from_log(learner: str, feedback: Any, settings: Settings) -> tuple[Policy, dict[str, Any]]:
    """Replay the feedback log through a tabular learner (oldest first)."""
    from gpt2_agent.rl.costs import CostModel
    from gpt2_agent.rl.tabular import TabularConfig, TabularLearner

    rows = [d for d in feedback.joined() if d.cost is not None]
    if not rows:
        raise ValueError("the feedback log has no decisions with known outcomes yet")
    tab = TabularLearner(
        config=TabularConfig(
            method=learner,  # type: ignore[arg-type]
            epsilon_min=settings.gate_explore_min,
            epsilon_max=settings.gate_explore_max,
        ),
        prior=CostModel.from_settings(settings),
    )
    for d in rows:
        state = int(tab.discretizer.index(d.obs[None, :])[0])
        revealed = {a: float(d.revealed[a]) for a in range(3) if np.isfinite(d.revealed[a])}
        tab.update(state, d.action, float(d.cost), revealed=revealed)
    return tab.policy, {"learner": learner, "decisions": len(rows), "source": "feedback log"}


def _policy_metrics(
    policy: Policy, data: LoggedData, notes: dict[str, Any], settings: Settings
) -> tuple[dict[str, Any], str | None]:
    """``cost_per_order`` from the feedback log (doubly robust) when it is large enough, else the
    online cost on the training stream; plus the evaluation set's identity."""
    metrics: dict[str, Any] = {}
    if len(data) >= MIN_LOG:
        report = evaluate_on_log(policy, data, settings)
        metrics.update(
            cost_per_order=report.dr.value,
            cost_source="off-policy (doubly robust) on the feedback log",
            ope_dr_stderr=report.dr.stderr,
            ope_ips=report.ips.value,
            ope_snips=report.snips.value,
            ope_ess=report.dr.ess,
            ope_match=report.match,
            logged_cost_per_order=report.logged_cost,
            automation_rate=report.automation_rate,
            log_decisions=report.n,
        )
        eval_hash: str | None = log_hash(data)
    else:
        metrics.update(
            cost_per_order=float(notes.get("online_cost_per_order", float("nan"))),
            cost_source="online cost on the training stream",
            automation_rate=float(notes.get("online_automation_rate", float("nan"))),
        )
        fingerprint = notes.get("stream_fingerprint")
        eval_hash = f"stream:{fingerprint}" if fingerprint else None
    metrics = {k: v for k, v in metrics.items() if not (isinstance(v, float) and not np.isfinite(v))}
    return metrics, eval_hash


@app.command()
def evaluate(
    version: Annotated[
        str, typer.Argument(help="Policy version number or alias (default: candidate)")
    ] = "candidate",
    as_json: JsonOpt = False,
) -> None:
    """Estimate a policy's cost per order on the feedback log (IPS, SNIPS, doubly robust), next
    to the production policy, the threshold gate and always-escalate."""
    from gpt2_agent.registry import PRODUCTION, Registry
    from gpt2_agent.rl.artifact import load_policy
    from gpt2_agent.rl.costs import CostModel
    from gpt2_agent.rl.feedback_log import FeedbackLog
    from gpt2_agent.rl.policies import FixedPolicy, ThresholdPolicy
    from gpt2_agent.store import open_database

    settings = _settings()
    with _errors():
        db = open_database(settings)
        try:
            registry = Registry(settings, db)
            feedback = FeedbackLog(db, CostModel.from_settings(settings))
            feedback.ingest()
            data = feedback.logged_data()
            if len(data) == 0:
                fail(
                    "the feedback log has no decisions with known outcomes yet: run orders through the gate "
                    "(and, in the demo, label them with gpt2-agent rl chargebacks)",
                    2,
                )
            name = settings.gate_policy_model
            rows: list[tuple[str, Any]] = []
            target = registry.resolve(name, int(version) if version.isdigit() else version)
            rows.append((target.ref, load_policy(target.path)[0]))
            holder = registry.alias_version(name, PRODUCTION)
            if holder is not None and holder != target.version:
                rows.append(
                    (f"{name}:{holder} (production)", load_policy(registry.get_version(name, holder).path)[0])
                )
            rows.append(
                (
                    "thresholds (settings)",
                    ThresholdPolicy(
                        settings.gate_auto_approve_min_probability, settings.gate_auto_reject_max_probability
                    ),
                )
            )
            rows.append(("always escalate", FixedPolicy()))
            reports = [(label, evaluate_on_log(policy, data, settings)) for label, policy in rows]
        finally:
            db.dispose()
    if as_json:
        print_json(
            {"log": log_hash(data), "decisions": len(data), "policies": {k: r.as_dict() for k, r in reports}}
        )
        return
    table = Table(
        "policy",
        "DR",
        "± se",
        "IPS",
        "SNIPS",
        "ESS",
        "match",
        "automation",
        title=f"Off-policy estimates on {len(data)} logged decisions (cost per order)",
    )
    for label, r in reports:
        table.add_row(
            label,
            f"{r.dr.value:.3f}",
            f"{r.dr.stderr:.3f}",
            f"{r.ips.value:.3f}",
            f"{r.snips.value:.3f}",
            f"{r.dr.ess:.0f}",
            f"{r.match:.2f}",
            f"{r.automation_rate:.1%}",
        )
    console.print(table)
    console.print(f"What the logged decisions actually cost: {reports[0][1].logged_cost:.3f} per order.")


@app.command()
def promote(
    version: Annotated[int, typer.Argument(help="Policy version to make production")],
    force: Annotated[bool, typer.Option("--force", help="Move the alias even if the gate refuses")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Make a policy version production (the gate hot-reloads it), through the promotion gate."""
    from gpt2_agent.store import open_database

    settings = _settings()
    with _errors():
        db = open_database(settings)
        try:
            result = promote_policy(settings, db, version, force=force)
        finally:
            db.dispose()
    if as_json:
        print_json(result)
        return
    console.print(escape(str(result.get("reason") or result)))


@app.command()
def chargebacks(
    demo_seed: Annotated[
        int, typer.Option("--demo-seed", help="Seed the demo warehouse was generated with")
    ] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Demo: give every logged gate decision its delayed fraud label from the demo's hidden truth."""
    from sqlalchemy import select

    from gpt2_agent.rl.costs import CostModel
    from gpt2_agent.rl.feedback_log import FeedbackLog
    from gpt2_agent.store import open_database
    from gpt2_agent.store.feedback_tables import GateDecisionLog

    settings = _settings()
    with _errors():
        db = open_database(settings)
        try:
            feedback = FeedbackLog(db, CostModel.from_settings(settings))
            feedback.ingest()
            with db.session() as s:
                rows = s.execute(
                    select(GateDecisionLog.id, GateDecisionLog.order_no, GateDecisionLog.features).where(
                        GateDecisionLog.order_no.is_not(None)
                    )
                ).all()
            keys = [str(r.order_no) for r in rows]
            amounts = [float((r.features or {}).get("amount") or 0) for r in rows]
            truth = demo_truth(settings.warehouse_url, keys, amounts, seed=demo_seed) if rows else None
            if rows and truth is None:
                fail(
                    f"the logged orders are not orders of a demo warehouse generated with seed {demo_seed}", 2
                )
            labelled = 0
            for row, bad in zip(rows, truth if truth is not None else [], strict=False):
                if feedback.record_outcome(
                    "chargeback",
                    "chargeback" if bad else "clear",
                    decision_id=int(row.id),
                    source=f"demo:{row.id}",
                ):
                    labelled += 1
        finally:
            db.dispose()
    out = {"decisions": len(rows), "labelled": labelled}
    if as_json:
        print_json(out)
        return
    console.print(f"Labelled {labelled} of {len(rows)} logged decisions with the demo's fraud truth.")


# --- imitation -------------------------------------------------------------------------------------


def retrain(
    model: Annotated[str, typer.Argument(help="The model to retrain (order-audit)")] = AUDIT_MODEL,
    from_feedback: Annotated[
        bool,
        typer.Option("--from-feedback", help="Fine-tune on the reviewers' decisions (approvals feedback)"),
    ] = False,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimisation steps")] = 100,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Learning rate")] = 2e-4,
    replay: Annotated[int, typer.Option("--replay", min=0, help="Original training examples mixed in")] = 500,
    min_examples: Annotated[
        int, typer.Option("--min-examples", min=1, help="Fewest reviewer decisions to train on")
    ] = 20,
    promote_: Annotated[bool, typer.Option("--promote/--no-promote", help="Try the promotion gate")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune the production audit model on reviewers' decisions, register it and try the gate."""
    if not from_feedback:
        fail("say what to retrain from: --from-feedback", 2)
    from gpt2_agent.store import open_database
    from gpt2_agent.training.trainer import TrainingError

    settings = _settings()
    try:
        db = open_database(settings)
        try:
            out = imitation_retrain(
                settings,
                db,
                model=model,
                steps=steps,
                lr=lr,
                replay=replay,
                min_examples=min_examples,
                promote=promote_,
            )
        finally:
            db.dispose()
    except (TrainingError, ValueError, LookupError, OSError) as exc:
        fail(escape(str(exc)), 2)
    if as_json:
        print_json(out)
        return
    table = Table(
        "",
        "production",
        "retrained",
        title=f"{model}: imitation of the reviewers ({out['examples']} decisions)",
    )
    for key in ("reviewer_agreement", "reviewer_log_loss", "roc_auc"):
        before, after = out["before"].get(key), out["after"].get(key)
        table.add_row(
            key, "-" if before is None else f"{before:.4f}", "-" if after is None else f"{after:.4f}"
        )
    console.print(table)
    console.print(f"Registered as {out['registered']}. {escape(str(out.get('promotion', '')))}")


def imitation_retrain(
    settings: Settings,
    db: Database,
    *,
    model: str = AUDIT_MODEL,
    steps: int = 100,
    lr: float = 2e-4,
    batch_size: int = 16,
    replay: int = 500,
    min_examples: int = 20,
    promote: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Fine-tune ``model``'s production version on the reviewers' decisions (with ``replay``
    examples of its own training data against forgetting), evaluate it on the production
    version's evaluation set (so the registry's promotion gate compares like with like), register
    it as ``candidate`` and, with ``promote``, try the gate.

    Returns the agreement with the reviewers on their decisions before and after, the test
    metrics, the registered version and the gate's answer.
    """
    from gpt2_agent.modeling import load_model
    from gpt2_agent.registry import PromotionRefused, Registry
    from gpt2_agent.rl.feedback_log import FeedbackLog
    from gpt2_agent.training.batches import TensorBatches
    from gpt2_agent.training.config import DataConfig
    from gpt2_agent.training.datasets import examples_hash, load_examples
    from gpt2_agent.training.encoding import Example, classification_features
    from gpt2_agent.training.evaluate import classifier_probabilities, evaluate_classifier
    from gpt2_agent.training.tokenizer import load_tokenizer
    from gpt2_agent.training.trainer import Trainer, TrainerConfig

    registry = Registry(settings, db)
    production = registry.resolve(model)
    rows = FeedbackLog(db).reviewer_examples()
    if len(rows) < min_examples:
        raise ValueError(f"{len(rows)} reviewer decisions in the feedback log; need at least {min_examples}")
    reviewed = [Example(text=r["text"], label=r["label"], key=str(r["key"])) for r in rows]
    net = load_model(production.path)
    tokenizer = load_tokenizer(production.path)
    id2label = {int(k): str(v) for k, v in (net.config.id2label or {}).items()}
    labels = [str(id2label[i]) for i in range(int(net.config.num_labels or 0))]
    if set(labels) != {"approve", "reject"}:
        raise ValueError(f"{production.ref} has labels {labels}, not approve/reject")
    data_cfg = (production.lineage.get("config") or {}).get("data")
    train_examples = list(reviewed)
    test: list[Example] = []
    eval_hash = production.eval_set_hash
    if data_cfg:
        splits = load_examples(DataConfig.model_validate(data_cfg), "sequence_classification", settings)
        test = splits.test or splits.validation
        rng = np.random.default_rng(seed)
        if replay and splits.train:
            picks = rng.choice(len(splits.train), size=min(replay, len(splits.train)), replace=False)
            train_examples += [splits.train[int(i)] for i in picks]
        eval_hash = splits.eval_hash
    max_length = net.config.n_positions
    pad = tokenizer.pad_token_id

    def agreement(m: Any) -> dict[str, Any]:
        features = classification_features(tokenizer, reviewed, labels, max_length)
        probs, y = classifier_probabilities(
            m, TensorBatches(features, batch_size=64, pad_token_id=pad, shuffle=False)
        )
        p_true = probs[np.arange(len(y)), y]
        return {
            "reviewer_agreement": float((probs.argmax(axis=1) == y).mean()),
            "reviewer_log_loss": float(-np.log(np.clip(p_true, 1e-9, 1.0)).mean()),
            "reviewer_p_true": float(p_true.mean()),
        }

    before = agreement(net)
    if test:
        before.update(roc_auc=evaluate_classifier(net, tokenizer, test).get("roc_auc"))
    features = classification_features(tokenizer, train_examples, labels, max_length)
    batches = TensorBatches(features, batch_size=batch_size, pad_token_id=pad, seed=seed)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    out_dir = settings.home / "runs" / f"{model}-imitation-{stamp}"
    config = TrainerConfig(
        lr=lr,
        max_steps=steps,
        batch_size=batch_size,
        warmup_steps=min(10, steps // 10),
        precision="fp32",
        seed=seed,
        weight_decay=0.0,
    )
    fit = Trainer(net, config, batches, out_dir=out_dir).fit(resume=False)
    net.eval()
    after = agreement(net)
    metrics: dict[str, Any] = {}
    if test:
        metrics = {
            k: v
            for k, v in evaluate_classifier(net, tokenizer, test).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        after.update(roc_auc=metrics.get("roc_auc"))
    metrics.update({f"imitation_{k}": v for k, v in after.items() if v is not None and k != "roc_auc"})
    folder = out_dir / "model"
    net.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    (folder / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    lineage = {
        "dataset": "feedback",
        "dataset_hash": examples_hash(train_examples),
        "eval_set_hash": eval_hash,
        "init_from": production.ref,
        "config": {
            **(production.lineage.get("config") or {}),
            "imitation": {"steps": steps, "lr": lr, "replay": replay},
        },
        "reviewer_decisions": len(reviewed),
        "steps": fit.steps,
    }
    info = registry.register(
        folder,
        model,
        task="classify",
        metrics=metrics,
        lineage=lineage,
        eval_set_hash=eval_hash,
        created_by="retrain",
    )
    registry.set_alias(model, "candidate", info.version, by="retrain", reason="imitation of the reviewers")
    result: dict[str, Any] = {
        "examples": len(reviewed),
        "replayed": len(train_examples) - len(reviewed),
        "before": before,
        "after": after,
        "registered": info.ref,
        "version": info.version,
    }
    if promote:
        try:
            result["promotion"] = registry.promote(
                model, info.version, by="retrain", reason="imitation"
            ).reason
            result["promoted"] = True
        except PromotionRefused as exc:
            result["promotion"], result["promoted"] = str(exc), False
    return result
