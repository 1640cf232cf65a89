"""End to end with real processes: serve, key, send_email to an aiosmtpd sink, SIGKILL, restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from gpt2_agent.client import Client
from tests.serverproc import Server, cli_env, create_key, free_port, run_cli


class Sink:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


def test_email_task_survives_sigkill(tmp_path: Path, smtp: tuple[Sink, int]) -> None:
    sink, smtp_port = smtp
    env = cli_env(
        tmp_path / "home", GPT2_AGENT_SMTP_PORT=str(smtp_port), GPT2_AGENT_SMTP_FROM="agent@example.com"
    )
    key = create_key(env, "submitter", "clerk")
    server = Server(env, tmp_path / "server.log")
    server.start()
    try:
        body = {"to": ["customer@example.com"], "subject": "订单 66120 已付款", "body": "Thank you!"}
        with Client(server.url, key) as client:
            first = client.submit_task("send_email", body, idempotency_key="mail-66120")
            done = client.wait_task(first["id"], timeout=30)
            assert done["status"] == "succeeded", done
            again = client.submit_task("send_email", body, idempotency_key="mail-66120")
            assert again["id"] == first["id"]
            time.sleep(1.0)
            events_before = client.task_events(first["id"])
        assert len(sink.messages) == 1
        mail = sink.messages[0]
        assert mail["To"] == "customer@example.com" and "66120" in str(mail["Subject"])
        assert mail["Message-ID"] == done["output"]["message_id"]

        # The CLI talks to the same server (remote command, --json).
        out = run_cli(env, "status", str(first["id"]), "--url", server.url, "--api-key", key, "--json").stdout
        assert json.loads(out)["status"] == "succeeded"

        server.kill()
        server.start()
        with Client(server.url, key) as client:
            task = client.get_task(first["id"])
            assert task["status"] == "succeeded" and task["output"] == done["output"]
            assert client.task_events(first["id"]) == events_before
            replay = client.submit_task("send_email", body, idempotency_key="mail-66120")
            assert replay["id"] == first["id"]
        time.sleep(0.5)
        assert len(sink.messages) == 1
    finally:
        server.stop()


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "home")
    result = run_cli(env, "submit", "send_email", "--input", "{", "--api-key", "x", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "not valid JSON" in result.stderr
    result = run_cli(
        env, "status", "1", "--url", f"http://127.0.0.1:{free_port()}", "--api-key", "x", check=False
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr and "cannot reach" in result.stderr
    result = run_cli(env, "keys", "create", "--role", "boss", "--name", "x", check=False)
    assert (
        result.returncode != 0 and "Traceback" not in result.stderr and "role must be one of" in result.stderr
    )
    config = json.loads(run_cli({**env, "GPT2_AGENT_SMTP_PASSWORD": "hunter2"}, "config", "--json").stdout)
    assert config["smtp_password"] == "********" and config["executor"] == "local"
