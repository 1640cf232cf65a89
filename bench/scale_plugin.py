"""The scale benchmark's own trivial task type and 3-step workflow (a plugin, never shipped).

Loaded with ``GPT2_AGENT_PLUGINS='["bench.scale_plugin"]'`` by the benchmark process and by every
worker it starts. Each step only records when its handler was entered (wall clock, one machine),
so the benchmark can split a run's time into engine and transport overhead.
"""

from __future__ import annotations

import time

from pydantic import BaseModel

from gpt2_agent.config import Settings
from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.handlers import TaskContext, TaskType
from gpt2_agent.engine.workflows import parse_workflow

WORKFLOW = """
name: bench-scale-three
steps:
  - {name: a, uses: bench.scale_noop}
  - {name: b, uses: bench.scale_noop}
  - {name: c, uses: bench.scale_noop}
output:
  a: "${{ steps.a.output.entered }}"
  b: "${{ steps.b.output.entered }}"
  c: "${{ steps.c.output.entered }}"
"""


class Empty(BaseModel):
    pass


class Entered(BaseModel):
    entered: float


def noop(ctx: TaskContext, _: Empty) -> Entered:
    return Entered(entered=time.time())


def register(engine: Engine, settings: Settings) -> None:
    engine.handlers.register(TaskType("bench.scale_noop", Empty, Entered, noop, timeout_seconds=60))
    engine.workflows.register(parse_workflow(WORKFLOW, "bench-scale-three.yaml"))
