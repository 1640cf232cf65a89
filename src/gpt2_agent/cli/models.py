"""``gpt2-agent models``: list, show, register, promote, download and the alias history of models.

Works on the local registry (settings from ``GPT2_AGENT_*``/TOML, database migrated on start).
Every command takes ``--json``; errors print one line on stderr and exit non-zero.
"""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from gpt2_agent.cli.common import JsonOpt, console, fail, print_json
from gpt2_agent.config import load_settings
from gpt2_agent.registry import PRODUCTION, Registry, RegistryError, VersionInfo, parse_ref

app = typer.Typer(help="Model registry: versions, aliases, promotion, download.", no_args_is_help=True)

ByOpt = Annotated[str | None, typer.Option("--by", help="Who does this (default: the OS user)")]


def open_registry() -> Registry:
    """The registry of the configured settings and database (migrated to the latest schema)."""
    from gpt2_agent.store import open_database

    settings = load_settings()
    return Registry(settings, open_database(settings))


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except RegistryError as exc:
        fail(escape(str(exc)))
    except SQLAlchemyError as exc:
        fail(escape(f"database error: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"))
    except (OSError, ValueError) as exc:
        fail(escape(str(exc)))


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "cli"


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{a}→{v}" for a, v in sorted(aliases.items())) or "-"


def _metrics_line(metrics: dict[str, Any]) -> str:
    parts = [f"{k}={v:.4g}" for k, v in sorted(metrics.items()) if isinstance(v, int | float)]
    return ", ".join(parts) or "-"


@app.command("list")
def list_models(as_json: JsonOpt = False) -> None:
    """List models with their latest version and aliases."""
    with _one_line_errors():
        models = open_registry().list_models()
    if as_json:
        print_json([m.to_dict() for m in models])
        return
    if not models:
        console.print("No models registered yet.")
        return
    table = Table("name", "task", "metric", "latest", "versions", "aliases", title="Models")
    table.add_column("updated", no_wrap=True)
    for m in models:
        table.add_row(
            m.name,
            m.task or "-",
            m.metric,
            str(m.latest_version or "-"),
            str(m.version_count),
            _aliases(m.aliases),
            m.updated_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION, NAME:ALIAS or NAME:latest")],
    as_json: JsonOpt = False,
) -> None:
    """Show a model and its versions, or one version in detail."""
    with _one_line_errors():
        registry = open_registry()
        parsed = parse_ref(ref)
        if parsed.version is None and parsed.alias is None:
            model = registry.get_model(parsed.name)
            versions = registry.list_versions(parsed.name)
            if as_json:
                print_json({**model.to_dict(), "versions": [_version_summary(v) for v in versions]})
                return
            _print_model(model.to_dict(), versions)
            return
        version = registry.resolve(ref)
    if as_json:
        print_json(version.to_dict())
        return
    _print_version(version)


def _version_summary(v: VersionInfo) -> dict[str, Any]:
    data = v.to_dict()
    for key in ("files", "lineage"):
        data.pop(key)
    return data


def _print_model(model: dict[str, Any], versions: list[VersionInfo]) -> None:
    console.print(
        f"[bold]{escape(model['name'])}[/]  task={model['task'] or '-'}  metric={model['metric']}  "
        f"generation={model['generation']}",
        highlight=False,
    )
    if model["description"]:
        console.print(escape(model["description"]), highlight=False)
    table = Table("version", "status", "aliases", "metrics", "eval set", "by")
    table.add_column("created", no_wrap=True)
    for v in versions:
        table.add_row(
            str(v.version),
            v.status,
            ", ".join(v.aliases) or "-",
            _metrics_line(v.metrics),
            (v.eval_set_hash or "-")[:12],
            v.created_by,
            v.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


def _print_version(v: VersionInfo) -> None:
    table = Table(show_header=False, title=f"{v.name}:{v.version}")
    code = v.lineage.get("code_version") or {}
    rows = [
        ("status", v.status),
        ("aliases", ", ".join(v.aliases) or "-"),
        ("path", str(v.path)),
        ("metrics", _metrics_line(v.metrics)),
        ("eval set", v.eval_set_hash or "-"),
        ("dataset", str(v.lineage.get("dataset_hash") or "-")),
        ("code", f"{code.get('package', '?')} @ {(code.get('git_commit') or '-')[:12]}"),
        ("size", f"{v.size_bytes / 1e6:.1f} MB in {len(v.files)} files"),
        ("created", f"{v.created_at:%Y-%m-%d %H:%M:%S} by {v.created_by}"),
    ]
    for key, value in rows:
        table.add_row(key, escape(value))
    console.print(table)


@app.command("register")
def register(
    path: Annotated[Path, typer.Argument(help="A finished training output folder (save_pretrained)")],
    name: Annotated[str, typer.Option("--name", "-n", help="Model name")],
    eval_set_hash: Annotated[
        str | None, typer.Option("--eval-set-hash", help="Hash of the evaluation set")
    ] = None,
    description: Annotated[str | None, typer.Option(help="Model description")] = None,
    move: Annotated[bool, typer.Option("--move", help="Move the folder in instead of copying")] = False,
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate a model folder and register it as the next version."""
    with _one_line_errors():
        version = open_registry().register(
            path, name, eval_set_hash=eval_set_hash, description=description, created_by=_who(by), move=move
        )
    if as_json:
        print_json(version.to_dict())
        return
    console.print(f"Registered [bold]{escape(version.ref)}[/] ({len(version.files)} files).", highlight=False)


@app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="Model name")],
    version: Annotated[int, typer.Argument(help="Version number to promote", min=1)],
    alias: Annotated[str, typer.Option("--alias", help="Alias to move")] = PRODUCTION,
    force: Annotated[bool, typer.Option("--force", help="Skip the metric gate")] = False,
    metric: Annotated[str | None, typer.Option(help="Metric to compare (max:NAME / min:NAME)")] = None,
    reason: Annotated[str, typer.Option(help="Why, for the alias history")] = "",
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move an alias (default production) to a version if it beats the current holder."""
    with _one_line_errors():
        result = open_registry().promote(
            name, version, alias, by=_who(by), force=force, metric=metric, reason=reason
        )
    if as_json:
        print_json(result.to_dict())
        return
    if not result.changed:
        console.print(f"{escape(name)}:{version} is already {escape(alias)}.", highlight=False)
        return
    console.print(
        f"[bold]{escape(alias)}[/] of {escape(name)} → v{version}"
        f" (was {'v' + str(result.previous_version) if result.previous_version else 'unset'}): "
        f"{escape(result.reason)}",
        highlight=False,
    )


@app.command("download")
def download(
    ref: Annotated[str, typer.Argument(help="NAME (production), NAME:VERSION or NAME:ALIAS")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File or folder to write (default: current folder)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a verified .tar.gz bundle of a version (loads with from_pretrained once unpacked)."""
    with _one_line_errors():
        registry = open_registry()
        version = registry.resolve(ref)
        file_name = f"{version.name}-v{version.version}.tar.gz"
        dest = output or Path.cwd()
        if dest.is_dir():
            dest = dest / file_name
        path = registry.bundle(version.name, version.version, dest=dest)
    size = path.stat().st_size
    if as_json:
        print_json({"name": version.name, "version": version.version, "path": str(path), "bytes": size})
        return
    console.print(f"Wrote {escape(str(path))} ({size / 1e6:.1f} MB).", highlight=False)


@app.command("history")
def history(
    name: Annotated[str, typer.Argument(help="Model name")],
    alias: Annotated[str | None, typer.Option("--alias", help="Only this alias")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every alias move of a model, oldest first."""
    with _one_line_errors():
        registry = open_registry()
        registry.get_model(name)
        events = registry.alias_history(name, alias)
    if as_json:
        print_json([e.to_dict() for e in events])
        return
    table = Table(title=f"Alias history of {escape(name)}")
    table.add_column("when", no_wrap=True)
    for column in ("alias", "from", "to", "who", "reason"):
        table.add_column(column)
    for e in events:
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            e.alias,
            str(e.from_version or "-"),
            str(e.to_version or "removed"),
            escape(e.who),
            escape(e.reason),
        )
    console.print(table)
