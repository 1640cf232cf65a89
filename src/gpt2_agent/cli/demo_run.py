"""``gpt2-agent demo``: everything a newcomer needs, in one command.

Creates the demo warehouse if absent, trains the demo models if the registry has none in
production (with progress bars; reused on the next start), starts a local SMTP sink whose mails
land in ``HOME/mail``, creates keys for an operator and a reviewer, and serves the API and web
console. ``POST /order/audit`` is open in the demo so the original one-page form works.
"""

from __future__ import annotations

import email
import email.policy
import logging
import time
from pathlib import Path
from typing import Any

from rich.panel import Panel
from rich.table import Table

from gpt2_agent.cli.common import console
from gpt2_agent.config import Settings, load_settings

log = logging.getLogger(__name__)

DEMO_MODELS = (("order-audit", "order-audit.tiny.toml"), ("nlu", "nlu.tiny.toml"))


def configs_dir() -> Path:
    """The shipped training configs: ``./configs``, else the source checkout's."""
    here = Path.cwd() / "configs"
    if here.is_dir():
        return here
    import gpt2_agent

    return Path(gpt2_agent.__file__).resolve().parents[2] / "configs"


def warehouse_ready(settings: Settings) -> bool:
    from sqlalchemy import create_engine, inspect

    url = settings.warehouse_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return False
    engine = create_engine(url)
    try:
        return inspect(engine).has_table("orders")
    finally:
        engine.dispose()


def ensure_warehouse(settings: Settings, orders: int) -> None:
    if warehouse_ready(settings):
        console.print(f"[green]✓[/] demo warehouse: {settings.warehouse_url}")
        return
    from gpt2_agent.demo import generate_warehouse

    with console.status(f"Generating the demo warehouse ({orders:,} orders)..."):
        summary = generate_warehouse(settings.warehouse_url, orders=orders, seed=0)
    console.print(
        f"[green]✓[/] demo warehouse: {summary.orders:,} orders in {summary.seconds:.1f}s; "
        f"try orders {', '.join(summary.showcase_orders)}"
    )


def ensure_models(settings: Settings) -> None:
    """Train and promote each demo model that has no production version yet."""
    from gpt2_agent.registry import Registry
    from gpt2_agent.store import open_database

    db = open_database(settings)
    registry = Registry(settings, db)
    try:
        for name, config in DEMO_MODELS:
            path = configs_dir() / config
            if not path.is_file():
                console.print(f"[yellow]![/] {name}: no config {path}; skipped")
                continue
            current = registry.alias_version(name, "production")
            if current is not None:
                console.print(f"[green]✓[/] model {name}: production version {current}")
                continue
            console.print(f"Training {name} from {path.name} (tiny size, about a minute)...")
            started = time.monotonic()
            version = _train(settings, path, name)
            if version is not None:
                registry.promote(name, version, by="demo", force=True, reason="demo model")
                console.print(
                    f"[green]✓[/] model {name}: version {version} in production "
                    f"({time.monotonic() - started:.0f}s)"
                )
    finally:
        db.dispose()


def _train(settings: Settings, config: Path, name: str) -> int | None:
    if name == "nlu":
        try:
            from gpt2_agent.nlu.train import train_nlu
        except ImportError:
            console.print("[yellow]![/] nlu: not available in this build; skipped")
            return None
        nlu_result: Any = train_nlu(config, settings, overrides=[], progress=True)
        return getattr(nlu_result, "registered_version", None)
    from gpt2_agent.training import train_from_config

    result = train_from_config(config, settings, progress=True)
    return result.registered_version


class MailSink:
    """An aiosmtpd handler that writes each message to ``folder`` and says so on the console."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{abs(hash(message['Message-ID'])) % 10**8:08d}.eml"
        (self.folder / name).write_bytes(envelope.content)
        console.print(f"[cyan]✉[/] mail to {message['To']}: {message['Subject']}  ({self.folder / name})")
        return "250 OK"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_demo(*, host: str | None, port: int | None, orders: int, train: bool) -> None:
    """Set everything up, then serve until interrupted."""
    import uvicorn
    from aiosmtpd.controller import Controller

    from gpt2_agent.api import create_app
    from gpt2_agent.api.keys import create_key
    from gpt2_agent.store import open_database

    base = load_settings()
    ensure_warehouse(base, orders)
    if train:
        ensure_models(base)

    smtp_port = _free_port()
    sink = Controller(MailSink(base.home / "mail"), hostname="127.0.0.1", port=smtp_port)
    sink.start()
    settings = base.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "smtp_starttls": False,
            "seed_route_open": True,
        }
    )
    db = open_database(settings)
    _, operator = create_key(db, name="demo-operator", role="admin")
    _, reviewer = create_key(db, name="demo-reviewer", role="approver")
    db.dispose()

    bind_host, bind_port = host or settings.host, port or settings.port
    url = f"http://{bind_host}:{bind_port}"
    table = Table(show_header=False, box=None)
    table.add_row("console", f"{url}/")
    table.add_row("API docs", f"{url}/docs")
    table.add_row("seed form", f"{url}/static/seed/order-audit.html")
    table.add_row("operator key (admin)", operator)
    table.add_row("reviewer key (approver)", reviewer)
    table.add_row("mails", str(settings.home / "mail"))
    console.print(Panel(table, title="GPT-2 Agent demo", subtitle="Ctrl+C stops it"))
    console.print(
        "Sign in as the operator, audit order 66120 and press 执行; sign in as the reviewer in another "
        "browser to approve what the gate escalates (nobody approves their own run)."
    )
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        uvicorn.run(create_app(settings), host=bind_host, port=bind_port, log_level="warning")
    finally:
        sink.stop()
