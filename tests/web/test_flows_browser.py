"""The console's real flows in a real browser, on a server with a demo warehouse, a trained audit model,
the shipped ``order-fulfillment`` workflow and an SMTP sink on 127.0.0.1:

- a clerk audits an order through the form, sees the recommendation and starts the workflow (执行);
  a second approver approves it and it leaves the first approver's open inbox live; the run finishes
  with the receipt filed and the customer's mail received by the sink;
- an admin starts a tiny training run from the training page and sees points on the loss chart, then
  the evaluation (confusion matrix, reliability diagram) when it is done.

Screenshots of each page in both languages go to the screenshot folder (``GPT2_AGENT_SCREENSHOTS``).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from gpt2_agent.config import load_settings
from tests.conftest import Sink, Smtp
from tests.serverproc import free_port
from tests.web.conftest import FAST, Server, Tab, running

pytestmark = pytest.mark.browser

LIVE = 10_000  # ms a live update may take
SHOWCASE = "66120"  # the demo warehouse's order with a valid card and the balance to pay it


@pytest.fixture(scope="module")
def mail() -> Iterator[Smtp]:
    """A real SMTP server on 127.0.0.1 that keeps every message."""
    smtp = Smtp(Sink(), free_port())
    controller = Controller(smtp.sink, hostname="127.0.0.1", port=smtp.port, ready_timeout=10)
    controller.start()
    try:
        yield smtp
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, base_warehouse: Path, audit_model_dir: Path, mail: Smtp
) -> Iterator[Server]:
    """The shop: warehouse, production audit model, SMTP, and a gate that asks a person about everything."""
    home = tmp_path_factory.mktemp("shop")
    shutil.copyfile(base_warehouse, home / "warehouse.db")
    settings = load_settings(
        home=home,
        smtp_host="127.0.0.1",
        smtp_port=mail.port,
        smtp_from="shop@example.com",
        # Every order goes to a person: nothing is below 0 or above a 0.00 approval limit.
        gate_auto_approve_max_amount=0,
        gate_auto_reject_max_probability=0.0,
        **FAST,
    )

    def production_model(app: Any) -> None:
        version = app.state.registry.register(audit_model_dir, "order-audit", created_by="tests").version
        app.state.registry.promote("order-audit", version, by="tests")

    with running(settings, production_model) as server:
        yield server


def wait_for(server: Server, path: str, done: Callable[[dict[str, Any]], bool], timeout: float = 60) -> Any:
    """Poll ``GET path`` as ada until ``done(body)``."""
    with server.api("ada") as api:
        deadline = time.monotonic() + timeout
        while True:
            body = api.get(path).json()
            if done(body) or time.monotonic() > deadline:
                return body
            time.sleep(0.1)


def shoot(tab: Tab, shots: Path, name: str) -> None:
    tab.page.screenshot(path=str(shots / name), full_page=True)


def test_audit_an_order_approve_it_in_a_second_inbox_and_the_mail_arrives(
    open_tab: Callable[..., Tab], server: Server, mail: Smtp, shots: Path
) -> None:
    # The clerk (a submitter) audits the showcase order in Chinese: the seed page's flow.
    sam = open_tab("sam", locale="zh-CN")
    sam.goto(server, "/audit")
    sam.page.fill("#order_no", SHOWCASE)
    sam.page.get_by_role("button", name="审核").click()
    result = sam.page.locator("#audit-result section")
    result.wait_for(timeout=LIVE)
    text = result.inner_text()
    assert f"订单 {SHOWCASE}" in text and re.search(r"订单审核(通过|失败)", text), text
    assert re.search(r"概率 \d+(\.\d)?%", text), text  # the recommendation's probability
    assert result.locator(".reasons li").count() > 0  # the reasons that drove it
    assert sam.page.url.endswith("/audit")  # no reload: htmx put the result in place
    shoot(sam, shots, "flow_audit.zh.png")

    # 执行 starts order-fulfillment and follows the run; the gate asks a person.
    result.get_by_role("button", name="执行").click()
    sam.page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(sam.page.url.rsplit("/", 1)[1])
    parked = wait_for(server, f"/api/v1/runs/{run_id}", lambda r: r["status"] != "running", 60)
    assert parked["status"] == "waiting_approval", parked
    sam.page.locator("#summary .badge.s-waiting_approval").first.wait_for(timeout=LIVE)

    # Two approvers have the inbox open; bea approves, and the item leaves abe's inbox without a reload.
    abe, bea = open_tab("abe"), open_tab("bea")
    for tab in (abe, bea):
        tab.goto(server, "/approvals")
    mine = abe.page.locator(".inbox-item", has_text=f"Run #{run_id}")
    mine.wait_for()
    assert f"Order {SHOWCASE}" in mine.inner_text()
    shoot(abe, shots, "flow_inbox.en.png")
    item = bea.page.locator(".inbox-item", has_text=f"Run #{run_id}")
    item.locator("textarea").fill("card and balance checked")
    item.get_by_role("button", name="Approve").click()
    bea.page.locator("#inbox-flash").get_by_text("approved").wait_for()
    mine.wait_for(state="detached", timeout=LIVE)

    # The run finishes on the clerk's page (live): paid, mailed, receipt filed.
    sam.page.locator("#summary .badge.s-succeeded").first.wait_for(timeout=60_000)
    run = wait_for(server, f"/api/v1/runs/{run_id}", lambda r: r["status"] == "succeeded")
    assert run["output"]["status"] == "paid" and run["output"]["reviewed"] is True, run["output"]
    sam.page.reload()
    linked = sam.page.locator(".links")
    linked.get_by_text(run["output"]["message_id"]).wait_for()
    assert linked.locator(f'a[href="/files/{run["output"]["receipt_file_id"]}"]').count() == 1
    shoot(sam, shots, "flow_run.zh.png")
    mails = [m for m in mail.sink.messages if m["Message-ID"] == run["output"]["message_id"]]
    assert len(mails) == 1 and f"Order {SHOWCASE} paid" in str(mails[0]["Subject"])
    for tab in (sam, abe, bea):
        assert tab.unexpected_errors() == []


def test_start_a_tiny_training_run_and_watch_the_loss_chart(
    open_tab: Callable[..., Tab], server: Server, shots: Path
) -> None:
    ada = open_tab("ada")
    ada.goto(server, "/training")
    assert ada.page.locator("#config").input_value() == "order-audit.tiny.toml"
    ada.page.fill("#batch_size", "16")
    ada.page.get_by_role("button", name="Start training").click()
    ada.page.wait_for_url(re.compile(r"/training/\d+$"))
    run_id = int(ada.page.url.rsplit("/", 1)[1])
    try:
        # The chart polls the run: training-loss points appear while it trains.
        ada.page.wait_for_function(
            "() => Number(document.getElementById('loss-chart').dataset.points || 0) > 0", timeout=90_000
        )
        assert ada.page.locator("#loss-chart canvas").count() > 0
        # The status follows the run without a reload (the page opened while it was queued).
        ada.page.locator("#training-status .badge:not(.s-queued)").wait_for(timeout=LIVE)
        summary = ada.page.locator("#loss-summary").inner_text()
        assert re.match(r"[1-9][\d,]* points; last training loss \d", summary), summary
        shoot(ada, shots, "flow_training_live.en.png")
        run = wait_for(
            server, f"/api/v1/training-runs/{run_id}", lambda r: r["status"] in ("succeeded", "failed"), 240
        )
        assert run["status"] == "succeeded", run.get("error")
        assert run["config"]["overrides"] == ["train.batch_size=16"]
        assert any(p.get("val_loss") is not None for p in run["history"])
        # Done: the evaluation, with the confusion matrix and the reliability diagram.
        ada.page.reload()
        ada.page.locator("table.confusion").wait_for()
        ada.page.wait_for_function(
            "() => document.querySelectorAll('#reliability-chart canvas').length > 0", timeout=LIVE
        )
        for lang, locale in (("en", "en-US"), ("zh", "zh-CN")):
            tab = ada if lang == "en" else open_tab("ada", locale=locale)
            tab.goto(server, f"/training/{run_id}")
            tab.page.wait_for_timeout(500)  # charts draw after load
            shoot(tab, shots, f"flow_training_done.{lang}.png")
            assert tab.unexpected_errors() == []
    finally:
        # Never leave a training run burning the CPU behind the test.
        with server.api("ada") as api:
            task_id = api.get(f"/api/v1/training-runs/{run_id}").json()["task_id"]
            api.post(f"/api/v1/tasks/{task_id}/cancel")
