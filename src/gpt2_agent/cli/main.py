"""``gpt2-agent``: serve, keys, submit, status, runs, approvals, config (and the ML commands)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer
from rich.table import Table

from gpt2_agent.cli.common import (
    DEFAULT_URL,
    JsonOpt,
    KeyOpt,
    UrlOpt,
    client,
    console,
    fail,
    parse_input,
    print_json,
)
from gpt2_agent.client import ApiError
from gpt2_agent.config import load_settings, masked_settings

app = typer.Typer(
    name="gpt2-agent",
    help="GPT-2 Agent: automate business processes with models trained on your own data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
keys_app = typer.Typer(help="Create, list and revoke API keys (local database).", no_args_is_help=True)
runs_app = typer.Typer(help="Start and inspect workflow runs.", no_args_is_help=True)
approvals_app = typer.Typer(help="List and decide approvals.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(runs_app, name="runs")
app.add_typer(approvals_app, name="approvals")


def _mount_optional() -> None:
    """Sub-apps of other parts (demo, models, training...); mounted when present."""
    import importlib

    for module, name in (
        ("gpt2_agent.cli.demo", "demo"),
        ("gpt2_agent.cli.models", "models"),
        ("gpt2_agent.cli.rl", "rl"),
    ):
        try:
            sub = importlib.import_module(module)
        except ImportError:
            continue
        app.add_typer(sub.app, name=name)
    for module, command in (
        ("gpt2_agent.cli.chat", "chat"),
        ("gpt2_agent.cli.worker", "worker"),
        ("gpt2_agent.cli.rl", "retrain"),
    ):
        try:
            app.command(command)(getattr(importlib.import_module(module), command))
        except (ImportError, AttributeError):
            continue
    try:
        ml = importlib.import_module("gpt2_agent.cli.ml")
    except ImportError:
        return
    ml.register(app)


# --- local commands ------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    no_executor: Annotated[
        bool, typer.Option("--no-executor", help="API only; workers run elsewhere")
    ] = False,
) -> None:
    """Run the API server (and the local executor) on the configured database."""
    import uvicorn

    from gpt2_agent.api import create_app

    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    application = create_app(settings, start_executor=not no_executor)
    uvicorn.run(application, host=host or settings.host, port=port or settings.port, log_level="info")


@app.command("config")
def show_config(as_json: JsonOpt = False) -> None:
    """Print the effective settings (secrets masked)."""
    data = masked_settings(load_settings())
    if as_json:
        print_json(data)
        return
    table = Table("setting", "value", title="Effective settings")
    for key, value in data.items():
        table.add_row(key, str(value))
    console.print(table)


def _local_db() -> Any:
    from gpt2_agent.store import open_database

    return open_database(load_settings())


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="submitter | approver | admin")],
    name: Annotated[str, typer.Option(help="Who or what uses the key")],
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print it once."""
    from gpt2_agent.api.keys import create_key

    row, secret = create_key(_local_db(), name=name, role=role)
    if as_json:
        print_json({"key": secret, "id": row.id, "name": row.name, "role": row.role})
        return
    console.print(f"Created {row.role} key #{row.id} for [bold]{row.name}[/]. It is shown only once:")
    console.print(secret, highlight=False, soft_wrap=True)


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    """List keys (never their secrets)."""
    from gpt2_agent.api.keys import list_keys

    rows = list_keys(_local_db())
    data: list[dict[str, Any]] = [
        {
            "id": r.id,
            "name": r.name,
            "role": r.role,
            "prefix": r.prefix,
            "active": r.active,
            "created_at": r.created_at,
        }
        for r in rows
    ]
    if as_json:
        print_json(data)
        return
    table = Table("id", "name", "role", "prefix", "active", "created")
    for d in data:
        table.add_row(
            str(d["id"]),
            d["name"],
            d["role"],
            d["prefix"],
            "yes" if d["active"] else "revoked",
            str(d["created_at"]),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: int, as_json: JsonOpt = False) -> None:
    """Revoke a key by id."""
    from gpt2_agent.api.keys import revoke_key

    row = revoke_key(_local_db(), key_id)
    if as_json:
        print_json({"id": row.id, "active": row.active})
    else:
        console.print(f"Revoked key #{row.id} ({row.name}).")


# --- remote commands -----------------------------------------------------------------------


def _task_table(task: dict[str, Any]) -> Table:
    table = Table(show_header=False, title=f"task {task['id']}")
    for key in (
        "type",
        "status",
        "attempt",
        "run_id",
        "step_name",
        "submitted_by",
        "created_at",
        "finished_at",
    ):
        table.add_row(key, str(task.get(key)))
    if task.get("output") is not None:
        table.add_row("output", str(task["output"]))
    if task.get("error"):
        table.add_row("error", f"[red]{task['error']}[/]")
    return table


@app.command()
def submit(
    type_: Annotated[str, typer.Argument(metavar="TYPE", help="Task type")],
    input_: Annotated[str, typer.Option("--input", help="JSON object or @file.json")] = "{}",
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the task finishes")] = False,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait")] = 120.0,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a task."""
    data = parse_input(input_)
    with client(url, api_key) as c:
        task = c.submit_task(type_, data, idempotency_key=idempotency_key)
        if wait:
            task = c.wait_task(task["id"], timeout=timeout)
    if as_json:
        print_json(task)
    else:
        console.print(_task_table(task))
    if wait and task["status"] != "succeeded":
        raise typer.Exit(1)


@app.command()
def status(
    task_id: int,
    events: Annotated[bool, typer.Option("--events", help="Show the transition history")] = False,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a task."""
    with client(url, api_key) as c:
        task = c.get_task(task_id)
        history = c.task_events(task_id) if events else None
    if as_json:
        print_json({**task, "events": history} if events else task)
        return
    console.print(_task_table(task))
    if history:
        table = Table("at", "who", "from", "to", "why", title="events")
        for e in history:
            table.add_row(e["at"], e["actor"], str(e["from_state"]), e["to_state"], e["reason"])
        console.print(table)


@runs_app.command("start")
def runs_start(
    workflow: str,
    input_: Annotated[str, typer.Option("--input", help="JSON object or @file.json")] = "{}",
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until it finishes or waits for approval")
    ] = False,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait")] = 120.0,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a workflow run."""
    data = parse_input(input_)
    with client(url, api_key) as c:
        run = c.start_run(workflow, data, idempotency_key=idempotency_key)
        if wait:
            run = c.wait_run(run["id"], timeout=timeout)
    _print_run(run, as_json)


@runs_app.command("show")
def runs_show(
    run_id: int, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None, as_json: JsonOpt = False
) -> None:
    """Show a run and its steps."""
    with client(url, api_key) as c:
        run = c.get_run(run_id)
    _print_run(run, as_json)


@runs_app.command("list")
def runs_list(
    status_: Annotated[str | None, typer.Option("--status")] = None,
    limit: int = 20,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List recent runs."""
    with client(url, api_key) as c:
        page = c.list_runs(status=status_, limit=limit)
    if as_json:
        print_json(page)
        return
    table = Table("id", "workflow", "status", "submitted by", "created", title=f"runs ({page['total']})")
    for r in page["items"]:
        table.add_row(str(r["id"]), r["workflow"], r["status"], str(r["submitted_by"]), r["created_at"])
    console.print(table)


def _print_run(run: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(run)
        return
    table = Table(
        "step",
        "type",
        "status",
        "attempt",
        "output / error",
        title=f"run {run['id']} ({run['workflow']}): {run['status']}",
    )
    for t in run.get("tasks", []):
        table.add_row(
            t["step_name"] or "",
            t["type"],
            t["status"],
            str(t["attempt"]),
            str(t["error"] or t["output"] or ""),
        )
    console.print(table)
    if run.get("error"):
        console.print(f"[red]{run['error']}[/]")


@approvals_app.command("list")
def approvals_list(
    status_: Annotated[str, typer.Option("--status")] = "pending",
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List approvals (pending by default)."""
    with client(url, api_key) as c:
        page = c.list_approvals(status=status_)
    if as_json:
        print_json(page)
        return
    table = Table(
        "id", "run", "step", "title", "submitted by", "status", title=f"approvals ({page['total']})"
    )
    for a in page["items"]:
        table.add_row(
            str(a["id"]), str(a["run_id"]), a["step_name"], a["title"], str(a["submitted_by"]), a["status"]
        )
    console.print(table)


@approvals_app.command("decide")
def approvals_decide(
    approval_id: int,
    decision: Annotated[str, typer.Argument(help="approve | reject")],
    comment: Annotated[str | None, typer.Option(help="Why")] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve or reject."""
    if decision not in ("approve", "reject"):
        fail("decision must be 'approve' or 'reject'", 2)
    with client(url, api_key) as c:
        result = c.decide(approval_id, decision, comment)
    if as_json:
        print_json(result)
    else:
        console.print(f"Approval {result['id']}: {result['status']} by {result['decided_by']}.")


def main() -> None:
    """Entry point: run the CLI, turning known errors into one line and a non-zero exit."""
    from pydantic import ValidationError

    from gpt2_agent.engine.errors import EngineError

    _quiet_libraries()
    _mount_optional()
    try:
        app()
    except ApiError as exc:
        _exit_with(f"{exc.detail} (HTTP {exc.status_code})" if exc.status_code else exc.detail, 1)
    except EngineError as exc:
        _exit_with(str(exc), 1)
    except ValidationError as exc:
        first = exc.errors()[0]
        _exit_with(f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}", 2)
    except (FileNotFoundError, TimeoutError, ValueError) as exc:
        _exit_with(str(exc), 1)


def _quiet_libraries() -> None:
    """Our own progress bars are enough: hide transformers' per-load bars and advice."""
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: models are ours


def _exit_with(message: str, code: int) -> None:
    from gpt2_agent.cli.common import err_console

    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
