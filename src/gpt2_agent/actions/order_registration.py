"""Registers the order actions with the engine: audit, gate, payment, notice and outcome.

The API's composition root calls :func:`register_order_actions` next to
``register_model_free_actions`` (which provides ``send_email`` and ``upload_file``, the other two
steps of the ``order-fulfillment`` workflow) and :func:`gpt2_agent.actions.feedback.install_feedback`
on the engine.
"""

from __future__ import annotations

from gpt2_agent.actions.gate import AutomationGate, GateService, automation_gate_task
from gpt2_agent.actions.gateway import PaymentGateway, load_gateway
from gpt2_agent.actions.order_audit import AuditPredictor, OrderAuditor, order_audit_task
from gpt2_agent.actions.outcome import order_outcome_task
from gpt2_agent.actions.payment import PaymentLedger, order_payment_task
from gpt2_agent.actions.receipt import order_notice_task
from gpt2_agent.actions.warehouse import Warehouse
from gpt2_agent.config import Settings
from gpt2_agent.engine.handlers import HandlerRegistry
from gpt2_agent.store import Database

ORDER_TASK_TYPES = ("order_audit", "automation_gate", "order_payment", "order_notice", "order_outcome")


def register_order_actions(
    registry: HandlerRegistry,
    settings: Settings,
    db: Database,
    runtime: AuditPredictor,
    gate: AutomationGate | None = None,
    *,
    gateway: PaymentGateway | None = None,
) -> None:
    """Register ``order_audit``, ``automation_gate``, ``order_payment``, ``order_notice`` and
    ``order_outcome``.

    :param runtime: the serving runtime (``gpt2_agent.serving.ServingRuntime``); serves ``order-audit``.
    :param gate: the automation policy for every workflow; default: :class:`ThresholdGate` from the
        settings, per workflow. The amount limit of the settings applies to any gate.
    :param gateway: default: the one ``settings.payment_gateway`` names (``sandbox``).
    """
    warehouse = Warehouse(settings.warehouse_url)
    ledger = PaymentLedger(db)
    registry.register(order_audit_task(OrderAuditor(settings, runtime, db)))
    registry.register(automation_gate_task(GateService(settings, db, gate)))
    registry.register(order_payment_task(gateway or load_gateway(settings, warehouse), warehouse, ledger))
    registry.register(order_notice_task(warehouse, ledger))
    registry.register(order_outcome_task())
