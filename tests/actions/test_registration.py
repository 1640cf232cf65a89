"""The composition root's entry point and the package's exports."""

from __future__ import annotations

from pathlib import Path

import gpt2_agent.actions as actions
from gpt2_agent.actions import register_model_free_actions
from gpt2_agent.config import Settings
from gpt2_agent.engine.handlers import HandlerRegistry, TaskContext
from gpt2_agent.store import create_database, upgrade
from gpt2_agent.store.engine_tables import Task

from .conftest import SmtpServer


def test_registered_actions_use_the_settings(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = Settings(
        home=tmp_path, smtp_host=smtp_server.host, smtp_port=smtp_server.port, smtp_from="agent@shop.example"
    )
    db = create_database(settings.database_url)
    upgrade(db)
    registry = HandlerRegistry()
    register_model_free_actions(registry, settings, db)
    assert {"send_email", "upload_file"} <= set(registry.names())
    with db.session() as session:
        task = Task(type="upload_file", status="running", input={}, idempotency_key="k")
        session.add(task)
        session.flush()
        task_id = task.id
    ctx = TaskContext(task_id=task_id, attempt=1, idempotency_key="k")

    upload = registry.get("upload_file")
    stored = upload.fn(ctx, upload.parse_input({"name": "hello.txt", "text": "hi"}))
    assert (
        settings.storage_path / "blobs" / stored.sha256[:2] / stored.sha256[2:4] / stored.sha256
    ).is_file()

    send = registry.get("send_email")
    sent = send.fn(
        ctx,
        send.parse_input(
            {"to": "a@example.com", "subject": "s", "body": "b", "attachments": [stored.file_id]}
        ),
    )
    assert (
        sent.accepted == ["a@example.com"] and smtp_server.sink.messages[0].mail_from == "agent@shop.example"
    )
    assert send.retry.max_attempts > 1
    db.dispose()


def test_all_is_sorted_and_complete() -> None:
    assert actions.__all__ == sorted(actions.__all__)
    assert all(hasattr(actions, name) for name in actions.__all__)
