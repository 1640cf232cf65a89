"""A test plugin: trivial task types and a 3-step workflow (loaded via ``settings.plugins``).

``sample.step`` appends ``start``/``done`` lines to the file named by ``SAMPLE_LOG`` (if set),
so tests with real processes can count how often each step really ran.
"""

from __future__ import annotations

import os
import time

from pydantic import BaseModel

from gpt2_agent.config import Settings
from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.errors import PermanentError
from gpt2_agent.engine.handlers import RetryPolicy, TaskContext, TaskType
from gpt2_agent.engine.workflows import parse_workflow


class StepIn(BaseModel):
    value: int = 0
    sleep: float = 0.0
    fail_times: int = 0
    permanent: bool = False


class StepOut(BaseModel):
    value: int


def _log(line: str) -> None:
    path = os.environ.get("SAMPLE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def step(ctx: TaskContext, inp: StepIn) -> StepOut:
    _log(f"start {ctx.task_id} {ctx.attempt}")
    deadline = time.monotonic() + inp.sleep
    while time.monotonic() < deadline:
        ctx.check_cancelled()
        time.sleep(min(0.02, inp.sleep))
    if inp.permanent:
        raise PermanentError("told to fail")
    if ctx.attempt <= inp.fail_times:
        raise RuntimeError(f"transient failure on attempt {ctx.attempt}")
    _log(f"done {ctx.task_id} {ctx.attempt}")
    return StepOut(value=inp.value + 1)


WORKFLOW = """
name: sample-three
description: three trivial steps
input: {value: integer}
steps:
  - name: one
    uses: sample.step
    with: {value: "${{ input.value }}", sleep: "${{ input.sleep or 0 }}"}
  - name: two
    uses: sample.step
    with: {value: "${{ steps.one.output.value }}", sleep: "${{ input.sleep or 0 }}"}
  - name: three
    uses: sample.step
    with: {value: "${{ steps.two.output.value }}", sleep: "${{ input.sleep or 0 }}"}
output: {value: "${{ steps.three.output.value }}"}
"""

APPROVAL_WORKFLOW = """
name: sample-approval
input: {value: integer}
steps:
  - name: check
    uses: sample.step
    with: {value: "${{ input.value }}"}
  - name: review
    type: approval
    when: steps.check.output.value > 10
    title: "Review value ${{ steps.check.output.value }}"
    context: {value: "${{ steps.check.output.value }}"}
  - name: act
    uses: sample.step
    with: {value: "${{ steps.check.output.value }}"}
output: {value: "${{ steps.act.output.value }}", reviewed: "${{ not steps.review.skipped }}"}
"""


def register(engine: Engine, settings: Settings) -> None:
    engine.handlers.register(
        TaskType(
            "sample.step",
            StepIn,
            StepOut,
            step,
            retry=RetryPolicy(max_attempts=3, initial_backoff_seconds=0.05),
            timeout_seconds=30,
        )
    )
    engine.workflows.register(parse_workflow(WORKFLOW, "sample-three.yaml"))
    engine.workflows.register(parse_workflow(APPROVAL_WORKFLOW, "sample-approval.yaml"))
