"""Workflow runs: input mapping, conditions, approvals (four eyes, one decision wins)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.errors import Conflict, Forbidden, InvalidInput, WorkflowDefinitionError
from gpt2_agent.engine.executors.local import LocalExecutor
from gpt2_agent.engine.workflows import WorkflowRegistry, load_workflow_file, parse_workflow
from tests.engine.conftest import wait_for


def test_three_steps_map_outputs_to_inputs(engine: Engine, executor: LocalExecutor) -> None:
    sub = engine.start_run("sample-three", {"value": 1}, submitted_by="alice")
    wait_for(lambda: engine.get_run(sub.id).status == "succeeded")
    run = engine.get_run(sub.id)
    assert run.output == {"value": 4}
    tasks = sorted(engine.list_tasks(run_id=sub.id).items, key=lambda t: t.id)
    assert [t.step_name for t in tasks] == ["one", "two", "three"]
    assert [t.idempotency_key for t in tasks] == [
        f"run:{sub.id}:one",
        f"run:{sub.id}:two",
        f"run:{sub.id}:three",
    ]


def test_condition_false_skips_the_approval(engine: Engine, executor: LocalExecutor) -> None:
    sub = engine.start_run("sample-approval", {"value": 1}, submitted_by="alice")
    wait_for(lambda: engine.get_run(sub.id).status == "succeeded")
    assert engine.get_run(sub.id).output == {"value": 3, "reviewed": False}
    assert any("skipped step 'review'" in e.reason for e in engine.task_events(run_id=sub.id))


def test_approval_parks_then_continues(engine: Engine, executor: LocalExecutor) -> None:
    sub = engine.start_run("sample-approval", {"value": 50}, submitted_by="alice")
    wait_for(lambda: engine.get_run(sub.id).status == "waiting_approval")
    [approval] = engine.list_approvals(status="pending").items
    assert approval.title == "Review value 51" and approval.context == {"value": 51}
    with pytest.raises(Forbidden):
        engine.decide(approval.id, approve=True, by="alice")
    engine.decide(approval.id, approve=True, by="bob", comment="fine")
    wait_for(lambda: engine.get_run(sub.id).status == "succeeded")
    assert engine.get_run(sub.id).output == {"value": 52, "reviewed": True}
    with pytest.raises(Conflict):
        engine.decide(approval.id, approve=False, by="carol")


def test_reject_ends_the_run_as_rejected(engine: Engine, executor: LocalExecutor) -> None:
    sub = engine.start_run("sample-approval", {"value": 50}, submitted_by="alice")
    wait_for(lambda: engine.get_run(sub.id).status == "waiting_approval")
    [approval] = engine.list_approvals(status="pending").items
    engine.decide(approval.id, approve=False, by="bob", comment="no")
    run = engine.get_run(sub.id)
    assert run.status == "rejected" and "rejected at step 'review'" in (run.error or "")
    assert not [t for t in engine.list_tasks(run_id=sub.id).items if t.step_name == "act"]


def test_two_concurrent_decisions_exactly_one_wins(engine: Engine) -> None:
    sub = engine.start_run("sample-approval", {"value": 50}, submitted_by="alice")
    [claim] = engine.claim("w", 1)
    engine.complete(claim, {"value": 51})
    [approval] = engine.list_approvals(status="pending").items
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def decide(who: str, approve: bool) -> None:
        barrier.wait()
        try:
            engine.decide(approval.id, approve=approve, by=who)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    threads = [
        threading.Thread(target=decide, args=("bob", True)),
        threading.Thread(target=decide, args=("carol", False)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "ok"]
    assert engine.get_run(sub.id).status in ("running", "rejected")


def test_run_input_is_checked(engine: Engine) -> None:
    with pytest.raises(InvalidInput) as info:
        engine.start_run("sample-three", {"value": "x"})
    assert info.value.errors[0]["field"] == "input.value"


def test_failed_step_fails_the_run(engine: Engine, executor: LocalExecutor) -> None:
    wf = """
name: failing
steps:
  - {name: a, uses: sample.step, with: {permanent: true}}
  - {name: b, uses: sample.step}
"""
    engine.workflows.register(parse_workflow(wf))
    sub = engine.start_run("failing", {})
    wait_for(lambda: engine.get_run(sub.id).status == "failed")
    assert "step 'a' failed" in (engine.get_run(sub.id).error or "")


def test_cancel_run_cancels_open_step(engine: Engine) -> None:
    sub = engine.start_run("sample-three", {"value": 1})
    engine.cancel_run(sub.id, by="bob")
    assert engine.get_run(sub.id).status == "cancelled"
    assert {t.status for t in engine.list_tasks(run_id=sub.id).items} == {"cancelled"}


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("name: w\nsteps:\n  - name: a\n    usess: x\n", 4, "steps.0.usess"),
        ("name: w\nsteps:\n  - name: a\n    uses: x\n    when: steps.b.output == 1\n", 5, "steps.0.when"),
        ("name: w\nsteps:\n  - name: a\n    type: approval\n    uses: x\n", 3, "steps.0"),
        ("name: W!\nsteps:\n  - {name: a, uses: x}\n", 1, "name"),
        ("name: w\nsteps: []\n", 2, "steps"),
        ("name: w\nsteps:\n  - name: a\n    uses: x\n    when: __import__('os')\n", 5, "steps.0.when"),
        ("name: w\n  bad: [\n", None, "yaml"),
    ],
)
def test_invalid_workflow_files_name_file_line_field(
    tmp_path: Path, text: str, line: int | None, field: str
) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    with pytest.raises(WorkflowDefinitionError) as info:
        load_workflow_file(path)
    err = info.value
    assert err.file == str(path)
    assert err.field == field
    if line is not None:
        assert err.line == line
    assert str(path) in str(err)


def test_registry_loads_a_folder(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nsteps:\n  - {name: s, uses: t}\n")
    registry = WorkflowRegistry()
    assert [d.name for d in registry.load_dir(tmp_path)] == ["a"]


def test_the_timeline_of_an_approved_run_tells_every_transition_in_order(
    engine: Engine, executor: LocalExecutor
) -> None:
    sub = engine.start_run("sample-approval", {"value": 50}, submitted_by="alice")
    wait_for(lambda: engine.get_run(sub.id).status == "waiting_approval")
    [approval] = engine.list_approvals(status="pending").items
    engine.decide(approval.id, approve=True, by="bob", comment="fine")
    wait_for(lambda: engine.get_run(sub.id).status == "succeeded")
    steps = {t.id: t.step_name for t in engine.list_tasks(run_id=sub.id).items}
    timeline = [
        (steps.get(e.task_id, "run") if e.task_id else "run", e.from_state, e.to_state, e.actor == "bob")
        for e in engine.task_events(run_id=sub.id)
    ]
    # Each step: queued, claimed, finished; the run follows; the person's decision is bob's.
    assert timeline == [
        ("run", None, "queued", False),
        ("check", None, "queued", False),
        ("check", "queued", "running", False),
        ("run", "queued", "running", False),
        ("check", "running", "succeeded", False),
        ("review", None, "waiting_approval", False),
        ("run", "running", "waiting_approval", False),
        ("review", "waiting_approval", "succeeded", True),
        ("run", "waiting_approval", "running", True),
        ("act", None, "queued", True),
        ("act", "queued", "running", False),
        ("act", "running", "succeeded", False),
        ("run", "running", "succeeded", False),
    ]
    ids = [e.id for e in engine.task_events(run_id=sub.id)]
    assert ids == sorted(ids)
