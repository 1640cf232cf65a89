"""``gpt2-agent chat`` over real HTTP, against a stand-in ``POST /api/v1/chat`` route on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from gpt2_agent.cli.chat import chat
from gpt2_agent.config import Settings
from gpt2_agent.engine.core import Engine
from gpt2_agent.nlu.dialogue import DialogueManager
from gpt2_agent.nlu.errors import InvalidText
from gpt2_agent.store import Database
from tests.nlu import standins
from tests.nlu.stubs import keyword_parser

app = typer.Typer()
app.command()(chat)


@pytest.fixture
def server(settings: Settings, database: Database) -> Iterator[tuple[str, Engine]]:
    engine = Engine(database, settings)
    standins.register(engine, settings)
    manager = DialogueManager(settings, database, keyword_parser(), engine)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            assert self.path == "/api/v1/chat" and self.headers["Authorization"] == "Bearer k1"
            try:
                status, out = (
                    200,
                    manager.reply(body.get("conversation_id"), body["text"], "cli", body.get("lang_hint")),
                )
            except InvalidText as exc:
                status, out = 422, {"detail": str(exc)}
            data = json.dumps(out).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", engine
    httpd.shutdown()
    thread.join()


def test_one_message_and_an_interactive_session(server: tuple[str, Engine]) -> None:
    url, engine = server
    runner = CliRunner()
    one = runner.invoke(app, ["--url", url, "--api-key", "k1", "--json", "pay order 12345, 1000 yuan"])
    assert one.exit_code == 0, one.output
    answer = json.loads(one.output)
    assert answer["awaiting"] == "confirmation"
    talk = runner.invoke(
        app, ["--url", url, "--api-key", "k1", "-c", answer["conversation_id"]], input="yes\n/quit\n"
    )
    assert talk.exit_code == 0, talk.output
    task_id = engine.list_tasks().items[0].id
    assert f"task #{task_id}" in talk.output and f"{url}/api/v1/tasks/{task_id}" in talk.output


def test_errors_are_one_line(server: tuple[str, Engine]) -> None:
    url, _ = server
    runner = CliRunner()
    no_key = runner.invoke(app, ["--url", url, "hello"], env={"GPT2_AGENT_API_KEY": ""})
    assert no_key.exit_code == 1 and "API key" in no_key.output
    empty = runner.invoke(app, ["--url", url, "--api-key", "k1", "   "])
    assert empty.exit_code == 1 and "text must not be empty" in empty.output
    down = runner.invoke(app, ["--url", "http://127.0.0.1:9", "--api-key", "k1", "hello"])
    assert down.exit_code == 1 and "cannot reach" in down.output
