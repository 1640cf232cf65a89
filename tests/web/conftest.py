"""Browser-test fixtures: a real server on 127.0.0.1 (uvicorn in a thread), keys per role, headless chromium.

Debian's ``/usr/bin/chromium`` is driven by Playwright through ``executable_path``. Without it the browser
tests skip (and fail when ``CI`` is set, so a CI machine cannot silently skip them).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpt2_agent.api.app import create_app
from gpt2_agent.api.keys import create_key
from gpt2_agent.config import Settings, load_settings

CHROMIUM = Path(os.environ.get("GPT2_AGENT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def register_tiny_model(registry: Any, folder: Path, name: str = "order-audit") -> None:
    """Two versions of a tiny classifier (v2 better by ROC-AUC), v1 holding ``production``."""
    from tests.registry.conftest import tiny_model, tiny_tokenizer

    for seed, auc in ((0, 0.81), (1, 0.93)):
        out = folder / f"{name}-{seed}"
        tiny_model(seed).save_pretrained(out)
        tiny_tokenizer().save_pretrained(out)
        metrics = {"roc_auc": auc, "accuracy": auc - 0.05, "loss": 1 - auc}
        registry.register(out, name, metrics=metrics, eval_set_hash="e" * 64, created_by="trainer")
    registry.promote(name, 1, by="ada", reason="first model")


def require_chromium() -> None:
    """Skip without chromium, unless CI is set: then its absence is a failure."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing; install it with 'apt-get install -y chromium'"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Server:
    """A running server and the keys of its users."""

    url: str
    settings: Settings
    keys: dict[str, str]

    def api(self, who: str) -> httpx.Client:
        """An HTTP client for the API as ``who``."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.keys[who]}"}, timeout=10
        )


USERS = {"ada": "admin", "abe": "approver", "bea": "approver", "sam": "submitter", "sue": "submitter"}


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free port of 127.0.0.1; yields its URL."""
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="web-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    port = uv.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


# Quick polling and sweeping, so live pages and runs move within a test's patience.
FAST = {"poll_interval_seconds": 0.05, "sweep_interval_seconds": 0.2, "executor_concurrency": 2}


@contextmanager
def running(settings: Settings, prepare: Callable[[Any], None] = lambda app: None) -> Iterator[Server]:
    """``create_app(settings)`` with a key per user in :data:`USERS`, ``prepare(app)``, served."""
    app = create_app(settings)
    keys = {name: create_key(app.state.db, name=name, role=role)[1] for name, role in USERS.items()}
    prepare(app)
    with serve(app) as url:
        yield Server(url=url, settings=settings, keys=keys)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app from ``create_app`` (which mounts the console) with the sample plugin and two models."""
    home = tmp_path_factory.mktemp("web-home")
    settings = load_settings(
        home=home, plugins=["tests.plugins.sample"], lease_seconds=5.0, heartbeat_seconds=1.0, **FAST
    )
    with running(settings, lambda app: register_tiny_model(app.state.registry, home / "outputs")) as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian chromium."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$GPT2_AGENT_SCREENSHOTS`` or a temporary folder."""
    target = os.environ.get("GPT2_AGENT_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


# Resource errors a page is expected to cause (a 403 page is itself an "error" to the console).
EXPECTED_ERRORS = re.compile(r"Failed to load resource: the server responded with a status of (403|404)")


@dataclass
class Tab:
    """A page in its own browser context, with the console errors it logged."""

    page: Any
    context: Any
    errors: list[str] = field(default_factory=list)

    def goto(self, server: Server, path: str) -> Any:
        return self.page.goto(server.url + path)

    def unexpected_errors(self, allow: re.Pattern[str] | None = None) -> list[str]:
        return [e for e in self.errors if not (allow and allow.search(e))]


@pytest.fixture
def open_tab(browser: Any, server: Server) -> Iterator[Callable[..., Tab]]:
    """``open_tab("abe", locale="en-US")``: a signed-in tab (``who=None``: signed out)."""
    tabs: list[Tab] = []

    def make(who: str | None = None, *, locale: str = "en-US", width: int = 1280, height: int = 900) -> Tab:
        context = browser.new_context(
            locale=locale, viewport={"width": width, "height": height}, extra_http_headers={}
        )
        context.set_default_timeout(10_000)
        page = context.new_page()
        tab = Tab(page=page, context=context)
        page.on("console", lambda msg: tab.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: tab.errors.append(f"page error: {exc}"))
        page.on("dialog", lambda dialog: dialog.accept())
        tabs.append(tab)
        if who is not None:
            sign_in(tab, server, server.keys[who])
        return tab

    yield make
    for tab in tabs:
        tab.context.close()


def sign_in(tab: Tab, server: Server, key: str, next_path: str = "/") -> None:
    """Sign in through the form."""
    tab.goto(server, f"/login?next={next_path}")
    tab.page.fill("#api_key", key)
    tab.page.click("form[action='/login'] button[type=submit]")
    tab.page.wait_for_url(re.compile(re.escape(server.url) + re.escape(next_path) + r"(\?.*)?$"))
