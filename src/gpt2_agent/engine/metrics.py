"""Prometheus metrics of the engine: transitions, step latency, and task counts from the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class EngineMetrics:
    """Counters and histograms, registered on a per-app registry (never the global one)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.transitions = Counter(
            "gpt2_agent_task_transitions_total",
            "Task state transitions",
            ["type", "to_state"],
            registry=registry,
        )
        self.step_latency = Histogram(
            "gpt2_agent_step_duration_seconds",
            "Time from claim to completion of a task, by type and outcome",
            ["type", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def add_state_counts(self, counts: Callable[[], list[tuple[str, str, int]]]) -> None:
        """Export ``gpt2_agent_tasks{type,state}`` read from the database at scrape time.

        Reading the database (not process memory) makes every replica report the same truth.
        """
        self.registry.register(_StateCollector(counts))


class _StateCollector(Collector):
    def __init__(self, counts: Callable[[], list[tuple[str, str, int]]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("gpt2_agent_tasks", "Tasks by type and state", labels=["type", "state"])
        for type_, state, n in self._counts():
            family.add_metric([type_, state], n)
        yield family
