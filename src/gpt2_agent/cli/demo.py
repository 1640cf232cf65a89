"""``gpt2-agent demo``: set up the demo company.

``gpt2-agent demo init [--orders N] [--seed S] [--url URL] [--json]`` writes the synthetic data
warehouse (customers, orders, past audits, payments, messages) to ``settings.warehouse_url`` or
``--url``. Errors print one line on stderr and exit with code 2.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from gpt2_agent.cli.common import JsonOpt, console, fail, print_json
from gpt2_agent.config import load_settings

app = typer.Typer(
    help="The demo: `gpt2-agent demo` sets up data, models and a mail sink, then serves; "
    "`demo init` only writes data.",
    invoke_without_command=True,
)


@app.callback()
def demo(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    orders: Annotated[int, typer.Option("--orders", help="Orders in a new warehouse")] = 20000,
    train: Annotated[bool, typer.Option("--train/--no-train", help="Train missing demo models")] = True,
) -> None:
    """Warehouse (if absent), demo models (if untrained), SMTP sink, server + web console."""
    if ctx.invoked_subcommand is not None:
        return
    from gpt2_agent.cli.demo_run import run_demo

    run_demo(host=host, port=port, orders=orders, train=train)


@app.command()
def init(
    orders: Annotated[int, typer.Option("--orders", help="Number of orders (at least 10)")] = 20000,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same data")] = 0,
    url: Annotated[
        str | None, typer.Option("--url", help="Warehouse database URL (default: settings)")
    ] = None,
    label_noise: Annotated[
        float, typer.Option("--label-noise", help="Share of past audit decisions flipped at random")
    ] = 0.05,
    json_out: JsonOpt = False,
) -> None:
    """Generate the demo warehouse, replacing its tables if they exist."""
    from gpt2_agent.demo import generate_warehouse

    try:
        target = url or load_settings().warehouse_url
        summary = generate_warehouse(target, orders=orders, seed=seed, label_noise=label_noise)
    except (ValueError, OSError) as exc:
        fail(escape(str(exc)), 2)
    except SQLAlchemyError as exc:
        fail(escape(f"database error: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"), 2)
    if json_out:
        print_json(summary.as_dict())
        return
    table = Table(title="Demo warehouse", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    paid = summary.payments
    rows = [
        ("database", summary.url),
        ("seed / label noise", f"{summary.seed} / {summary.label_noise:.0%}"),
        ("as of", summary.as_of),
        ("customers", f"{summary.customers:,}"),
        ("payment cards", f"{summary.cards:,} ({summary.expired_cards:,} expired)"),
        ("orders", f"{summary.orders:,}"),
        (
            "audits",
            f"{summary.approved:,} approved, {summary.rejected:,} rejected, {summary.pending:,} pending",
        ),
        (
            "payments",
            f"{paid['paid']:,} paid, {paid['insufficient_balance']:,} insufficient balance, "
            f"{paid['card_expired']:,} card expired",
        ),
        ("customer messages", f"{summary.messages:,}"),
        ("try orders", ", ".join(summary.showcase_orders)),
        ("took", f"{summary.seconds:.1f}s"),
    ]
    for what, value in rows:
        table.add_row(what, escape(value))
    console.print(table)
