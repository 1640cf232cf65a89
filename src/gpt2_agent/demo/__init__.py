"""The demo company: a synthetic data warehouse (customers, orders, past audits, payments,
customer messages) for trying the whole system and for training its first models."""

from gpt2_agent.demo.company import AS_OF, SHOWCASE_ORDERS
from gpt2_agent.demo.signals import SignalWeights
from gpt2_agent.demo.warehouse import WarehouseSummary, generate_warehouse, warehouse_digest

__all__ = [
    "AS_OF",
    "SHOWCASE_ORDERS",
    "SignalWeights",
    "WarehouseSummary",
    "generate_warehouse",
    "warehouse_digest",
]
