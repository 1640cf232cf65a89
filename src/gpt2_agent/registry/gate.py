"""The promotion gate: does a candidate version beat the current alias holder?

A metric name may carry its direction explicitly (``"max:roc_auc"``, ``"min:latency_ms"``);
otherwise losses, errors and perplexity are lower-is-better and everything else higher-is-better.
Metrics are looked up in a version's ``metrics`` dict, flat or by dotted path (``"eval.f1"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gpt2_agent.registry.errors import PromotionRefused

# Default promotion metric per task kind (the heads of ``modeling``: classify, tag, generate).
DEFAULT_METRICS = {"classify": "roc_auc", "tag": "f1", "generate": "perplexity"}
FALLBACK_METRIC = "loss"

_LOWER_IS_BETTER = frozenset(
    {"loss", "perplexity", "ppl", "error", "error_rate", "mse", "rmse", "mae", "ece"}
)
_LOWER_SUFFIXES = ("_loss", "_error", "_perplexity", "_ppl", "_mse", "_rmse", "_mae", "_ms", "_seconds")


@dataclass(frozen=True)
class Metric:
    """A metric name and whether bigger values are better."""

    name: str
    higher_is_better: bool

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


def parse_metric(spec: str) -> Metric:
    """``"roc_auc"`` / ``"max:roc_auc"`` / ``"min:loss"`` -> :class:`Metric`."""
    spec = spec.strip()
    if spec.startswith(("max:", "min:")):
        return Metric(spec[4:], spec.startswith("max:"))
    if not spec:
        raise ValueError("empty metric name")
    leaf = spec.rsplit(".", 1)[-1].lower()
    lower = leaf in _LOWER_IS_BETTER or leaf.endswith(_LOWER_SUFFIXES)
    return Metric(spec, not lower)


def default_metric(task: str | None) -> str:
    """Promotion metric used when a model has none configured."""
    return DEFAULT_METRICS.get(task or "", FALLBACK_METRIC)


def metric_value(metrics: dict[str, Any], name: str) -> float | None:
    """``metrics[name]``, or the dotted path ``a.b`` into nested dicts; None if absent or not a number."""
    value: Any = metrics.get(name)
    if value is None and "." in name:
        value = metrics
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


@dataclass(frozen=True)
class GateInput:
    """One side of a comparison."""

    version: int
    metrics: dict[str, Any]
    eval_set_hash: str | None


def check_gate(
    model: str, alias: str, candidate: GateInput, holder: GateInput, metric: Metric
) -> tuple[float | None, float | None]:
    """Raise :class:`PromotionRefused` unless ``candidate`` strictly beats ``holder``.

    Returns ``(candidate_value, holder_value)`` for the audit trail.
    """
    who = f"{model} v{candidate.version}"
    held = f"{alias} v{holder.version}"
    if candidate.eval_set_hash is None or holder.eval_set_hash is None:
        missing = who if candidate.eval_set_hash is None else held
        raise PromotionRefused(
            f"refused: cannot compare {who} with {held}: {missing} has no eval_set_hash; "
            "evaluate both on the same set or use force"
        )
    if candidate.eval_set_hash != holder.eval_set_hash:
        raise PromotionRefused(
            f"refused: {who} was evaluated on eval set {candidate.eval_set_hash[:12]} but {held} on "
            f"{holder.eval_set_hash[:12]}; metrics from different eval sets are not comparable "
            "(re-evaluate on the same set or use force)"
        )
    new = metric_value(candidate.metrics, metric.name)
    old = metric_value(holder.metrics, metric.name)
    if new is None or old is None:
        missing = who if new is None else held
        raise PromotionRefused(
            f"refused: {missing} has no numeric {metric.name!r} metric; use force to override"
        )
    better = new > old if metric.higher_is_better else new < old
    if not better:
        raise PromotionRefused(
            f"refused: {who} {metric.name}={new:.6g} does not beat {held} {metric.name}={old:.6g} "
            f"({metric.direction}); use force to override"
        )
    return new, old
