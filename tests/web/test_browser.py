"""The console in a real browser (headless chromium) against a real server on 127.0.0.1."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.web.conftest import EXPECTED_ERRORS, Server, Tab, sign_in

pytestmark = pytest.mark.browser

LIVE = 10_000  # ms a live update may take (the inbox polls every second, timelines twice a second)


def start_runs(server: Server, who: str, values: list[int]) -> list[int]:
    """Start ``sample-approval`` runs through the API; value > 10 parks each on an approval."""
    with server.api(who) as api:
        ids = []
        for value in values:
            response = api.post("/api/v1/workflows/sample-approval/runs", json={"input": {"value": value}})
            response.raise_for_status()
            ids.append(response.json()["id"])
    return ids


def wait_run(server: Server, run_id: int, status: str) -> None:
    """Wait until the run reaches ``status`` (through the API)."""
    import time

    with server.api("ada") as api:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if api.get(f"/api/v1/runs/{run_id}").json()["status"] == status:
                return
            time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not reach {status}")


def test_sign_in_wrong_key_then_back_to_the_page_asked_for(
    open_tab: Callable[..., Tab], server: Server
) -> None:
    tab = open_tab(None)
    tab.goto(server, "/runs")
    assert re.search(r"/login\?next=/runs$", tab.page.url)
    tab.page.fill("#api_key", "g2a_not-a-real-key")
    tab.page.click("form[action='/login'] button[type=submit]")
    alert = tab.page.locator("#login-error")
    alert.wait_for()
    assert alert.inner_text() == "Sign-in failed. Check the key and try again."
    assert tab.page.get_attribute("#api_key", "aria-invalid") == "true"
    tab.page.fill("#api_key", server.keys["sam"])
    tab.page.click("form[action='/login'] button[type=submit]")
    tab.page.wait_for_url(server.url + "/runs")
    assert tab.page.locator("h1").inner_text() == "Runs"
    # Signing out ends the session: the next page asks for the key again.
    tab.page.click("form[action='/logout'] button")
    tab.page.wait_for_url(re.compile(r"/login$"))
    tab.goto(server, "/")
    assert "/login" in tab.page.url
    assert tab.unexpected_errors() == []


def test_session_cookie_is_httponly_and_strict(open_tab: Callable[..., Tab], server: Server) -> None:
    tab = open_tab("sam")
    cookies = {c["name"]: c for c in tab.context.cookies()}
    session = cookies["g2a_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert server.keys["sam"] not in tab.page.evaluate("document.cookie")


def test_dashboard_counts_chart_and_live_recent_runs(open_tab: Callable[..., Tab], server: Server) -> None:
    tab = open_tab("ada")
    page = tab.page
    assert page.locator("h1").inner_text() == "Dashboard"
    page.locator("#throughput canvas").first.wait_for()  # uPlot drew the chart
    assert page.locator("#counts .card h2").all_inner_texts()[:2] == ["Tasks by state", "Runs by state"]
    assert page.locator("#counts").get_by_text("Automation rate").count() == 1
    # A run started elsewhere shows up without reloading.
    (run_id,) = start_runs(server, "sue", [5])
    page.locator(f"#recent a[href='/runs/{run_id}']").wait_for(timeout=LIVE)
    assert tab.unexpected_errors() == []


def test_submit_then_approve_from_a_second_inbox_and_it_leaves_the_first_live(
    open_tab: Callable[..., Tab], server: Server
) -> None:
    # The submitter starts a run through the form; it parks on an approval.
    sam = open_tab("sam")
    sam.goto(server, "/workflows/sample-approval")
    sam.page.fill("#in-value", "2.5")
    sam.page.click("main form button[type=submit]")
    assert sam.page.locator("#in-value-error").inner_text() == "Enter a whole number."
    sam.page.fill("#in-value", "50")
    sam.page.click("main form button[type=submit]")
    sam.page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(sam.page.url.rsplit("/", 1)[1])
    sam.page.locator("#summary .badge.s-waiting_approval").first.wait_for(timeout=LIVE)
    (second_run,) = start_runs(server, "sue", [60])
    wait_run(server, second_run, "waiting_approval")

    abe, bea = open_tab("abe"), open_tab("bea")
    for tab in (abe, bea):
        tab.goto(server, "/approvals")
    first = abe.page.locator(".inbox-item", has_text=f"Run #{run_id}")
    first.wait_for()
    assert "Review value 51" in first.inner_text()
    assert bea.page.locator(".inbox-item", has_text=f"Run #{second_run}").count() == 1

    # j/k move the selection.
    items = bea.page.locator(".inbox-item")
    bea.page.locator("h1").click()
    bea.page.keyboard.press("j")
    assert "selected" in (items.nth(1).get_attribute("class") or "")
    bea.page.keyboard.press("k")
    assert "selected" in (items.nth(0).get_attribute("class") or "")

    # bea approves the first item with a comment; it leaves abe's inbox without a reload.
    item = bea.page.locator(".inbox-item", has_text=f"Run #{run_id}")
    item.locator("textarea").fill("checked the value")
    item.get_by_role("button", name="Approve").click()
    bea.page.locator("#inbox-flash").get_by_text("approved").wait_for()
    first.wait_for(state="detached", timeout=LIVE)

    # bea rejects the second with the keyboard (select it, press r); it leaves abe's inbox live too.
    bea.page.locator(".inbox-item", has_text=f"Run #{second_run}").locator("h2").click()
    bea.page.keyboard.press("r")
    bea.page.locator("#inbox-flash").get_by_text("rejected").wait_for()
    abe.page.locator(".inbox-item", has_text=f"Run #{second_run}").wait_for(state="detached", timeout=LIVE)
    abe.page.locator("#inbox-empty").wait_for(state="visible", timeout=LIVE)

    # The submitter's run page followed along: approved, then finished, with who decided in the timeline.
    sam.page.locator("#summary .badge.s-succeeded").first.wait_for(timeout=LIVE)
    timeline = sam.page.locator("#timeline")
    timeline.get_by_text("by bea").first.wait_for(timeout=LIVE)
    wait_run(server, second_run, "rejected")
    with server.api("ada") as api:
        decided = api.get("/api/v1/approvals", params={"status": "approved"}).json()["items"]
    assert any(a["run_id"] == run_id and a["comment"] == "checked the value" for a in decided)
    for tab in (sam, abe, bea):
        assert tab.unexpected_errors() == []


def test_task_and_run_detail_show_the_timeline(open_tab: Callable[..., Tab], server: Server) -> None:
    (run_id,) = start_runs(server, "sam", [3])  # value <= 10: no approval, runs to the end
    wait_run(server, run_id, "succeeded")
    tab = open_tab("sam")
    tab.goto(server, f"/runs/{run_id}")
    page = tab.page
    assert page.locator("h1").inner_text().startswith(f"Run #{run_id}")
    events = page.locator("#timeline li.event")
    assert events.count() >= 4
    assert "by sam" in events.first.inner_text()
    assert page.locator("#timeline").get_by_text("succeeded").count() >= 1
    # The step table links to each task; a task page has its own timeline and input/output.
    page.locator("#summary table a").first.click()
    page.wait_for_url(re.compile(r"/tasks/\d+$"))
    assert page.locator("#timeline li.event").count() >= 3
    assert '"value": 3' in page.locator("#summary pre.json").first.inner_text()
    assert '"value": 4' in page.locator("#summary pre.json").nth(1).inner_text()
    # The timeline's times were rewritten in the viewer's time zone (no "UTC" left).
    assert "UTC" not in page.locator("#timeline time").first.inner_text()
    assert tab.unexpected_errors() == []


def test_cancel_a_waiting_run_and_retry_it(open_tab: Callable[..., Tab], server: Server) -> None:
    (run_id,) = start_runs(server, "sue", [70])
    wait_run(server, run_id, "waiting_approval")
    tab = open_tab("sue")
    tab.goto(server, f"/runs/{run_id}")
    tab.page.get_by_role("button", name="Cancel").click()
    tab.page.locator("#summary .badge.s-cancelled").first.wait_for()
    tab.page.get_by_role("button", name="Run again with the same input").click()
    tab.page.wait_for_url(re.compile(r"/runs/\d+$"))
    assert int(tab.page.url.rsplit("/", 1)[1]) != run_id
    assert tab.unexpected_errors() == []


def test_switch_language_both_ways(open_tab: Callable[..., Tab], server: Server) -> None:
    tab = open_tab("abe", locale="en-US")
    page = tab.page
    assert page.locator("html").get_attribute("lang") == "en"
    page.get_by_role("button", name="中文").click()
    page.locator("html[lang='zh-CN']").wait_for(state="attached")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "仪表盘"
    tab.goto(server, "/approvals")  # the choice sticks across pages
    assert page.locator("h1").inner_text().startswith("审批")
    page.get_by_role("button", name="English").click()
    page.locator("html[lang='en']").wait_for(state="attached")
    assert page.locator("h1").inner_text().startswith("Approvals")
    # A browser that prefers Chinese gets Chinese from the start, sign-in page included.
    zh = open_tab(None, locale="zh-CN")
    zh.goto(server, "/login")
    assert zh.page.locator("h1").inner_text() == "登录"
    assert tab.unexpected_errors() == [] and zh.unexpected_errors() == []


def test_submitter_cannot_see_the_inbox(open_tab: Callable[..., Tab], server: Server) -> None:
    tab = open_tab("sam")
    nav = tab.page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Approvals").count() == 0
    assert nav.get_by_role("link", name="API keys").count() == 0
    response = tab.goto(server, "/approvals")
    assert response.status == 403
    assert tab.page.locator("h1").inner_text() == "Not available to you"
    assert tab.page.locator(".inbox-item").count() == 0
    assert tab.goto(server, "/keys").status == 403
    assert tab.unexpected_errors(allow=EXPECTED_ERRORS) == []


def test_keys_create_shown_once_and_revoke(open_tab: Callable[..., Tab], server: Server) -> None:
    admin = open_tab("ada")
    admin.goto(server, "/keys")
    page = admin.page
    page.fill("#key-name", "bad name!")
    page.click("form[action='/keys'] button[type=submit]")
    assert page.locator("#key-name-error").is_visible()
    page.fill("#key-name", "carol")
    page.select_option("#key-role", "approver")
    page.click("form[action='/keys'] button[type=submit]")
    secret = page.input_value("#new-key")
    assert secret.startswith("g2a_")
    # The new key works at once.
    carol = open_tab(None)
    sign_in(carol, server, secret, "/approvals")
    # Shown once: a reload of the list no longer holds it.
    admin.goto(server, "/keys")
    assert secret not in page.content()
    row = page.locator("tr", has_text="carol")
    row.get_by_role("button", name="Revoke key carol").click()  # the confirm dialog is accepted
    page.locator(".flash.ok").wait_for()
    assert "revoked" in row.inner_text()
    # The revoked key is signed out on its next page.
    carol.goto(server, "/approvals")
    assert "/login" in carol.page.url
    assert admin.unexpected_errors() == [] and carol.unexpected_errors() == []


def test_models_download_a_bundle_and_promote(
    open_tab: Callable[..., Tab], server: Server, tmp_path: Path
) -> None:
    tab = open_tab("ada")
    tab.goto(server, "/models")
    page = tab.page
    page.get_by_role("link", name="order-audit").click()
    page.wait_for_url(server.url + "/models/order-audit")
    assert page.locator("thead th").nth(2).inner_text() == "roc_auc"  # the promotion metric leads
    with page.expect_download() as info:
        page.get_by_role("link", name="Download bundle of v2").click()
    download = info.value
    assert download.suggested_filename == "order-audit-2.tar.gz"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.read_bytes()[:2] == b"\x1f\x8b"
    page.get_by_role("button", name="Promote v2 to production").click()
    page.locator(".flash.ok").wait_for()
    assert "roc_auc 0.93 beats 0.81" in page.locator(".flash.ok").inner_text()
    assert page.get_by_role("button", name="Promote v2 to production").count() == 0
    assert tab.unexpected_errors() == []


PAGES = [
    "/login",
    "/",
    "/audit",
    "/approvals",
    "/runs",
    "/tasks",
    "/workflows",
    "/workflows/sample-approval",
    "/runs/{run}",
    "/tasks/{task}",
    "/chat",
    "/training",
    "/models",
    "/models/order-audit",
    "/keys",
    "/no-such-page",
]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_page_renders_without_console_errors(
    open_tab: Callable[..., Tab], server: Server, shots: Path, lang: str
) -> None:
    (run_id,) = start_runs(server, "sam", [40 + (lang == "zh")])
    wait_run(server, run_id, "waiting_approval")
    with server.api("ada") as api:
        task_id = api.get(f"/api/v1/runs/{run_id}").json()["tasks"][0]["id"]
    locale = "zh-CN" if lang == "zh" else "en-US"
    tab = open_tab("ada", locale=locale)
    phone = open_tab("abe", locale=locale, width=390, height=844)
    signed_out = open_tab(None, locale=locale)
    for path in PAGES:
        url = path.format(run=run_id, task=task_id)
        target = signed_out if path == "/login" else tab
        response = target.goto(server, url)
        expected = 404 if path == "/no-such-page" else 200
        assert response.status == expected, url
        # Let scripts run (charts, local times, live streams) before judging the page.
        target.page.wait_for_timeout(500 if path == "/" else 250)
        html_lang = target.page.locator("html").get_attribute("lang")
        assert html_lang == ("zh-CN" if lang == "zh" else "en"), url
        name = (url.strip("/").replace("/", "_") or "dashboard") + f".{lang}.png"
        target.page.screenshot(path=str(shots / name), full_page=True)
    for path in ("/", "/approvals", f"/runs/{run_id}"):
        phone.goto(server, path)
        phone.page.wait_for_timeout(400)
        # Nothing sticks out sideways at phone width.
        assert phone.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        name = "phone_" + (path.strip("/").replace("/", "_") or "dashboard") + f".{lang}.png"
        phone.page.screenshot(path=str(shots / name), full_page=True)
    allow = re.compile(r"status of 404")
    for t in (tab, phone, signed_out):
        assert t.unexpected_errors(allow=allow) == []
