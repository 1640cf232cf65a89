"""Shared CLI plumbing: consoles, JSON output, remote client options, and one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from gpt2_agent.client import Client

console = Console()
err_console = Console(stderr=True)

UrlOpt = Annotated[str, typer.Option("--url", envvar="GPT2_AGENT_URL", help="Server URL for remote commands")]
KeyOpt = Annotated[
    str | None, typer.Option("--api-key", envvar="GPT2_AGENT_API_KEY", help="API key for remote commands")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]
DEFAULT_URL = "http://127.0.0.1:8000"


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear line on stderr and exit non-zero (no traceback)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def client(url: str, api_key: str | None) -> Client:
    if not api_key:
        fail("an API key is needed: pass --api-key or set GPT2_AGENT_API_KEY")
    return Client(url, api_key)


def parse_input(value: str) -> dict[str, Any]:
    """``--input`` is inline JSON or ``@path`` to a JSON file."""
    text = value
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            fail(f"--input: file not found: {path}", 2)
        text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--input is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", 2)
    if not isinstance(data, dict):
        fail("--input must be a JSON object", 2)
    return data
