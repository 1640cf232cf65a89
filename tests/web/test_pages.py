"""The console without a browser: sessions, CSRF, languages, error pages, and the models, training, chat
and audit pages on a server that has no models yet (what each says is missing) and with real ones.

The full flows (an audited order approved in a second browser, mail received, a training run's loss curve)
are in ``test_flows_browser.py``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gpt2_agent.api.app import create_app
from gpt2_agent.api.keys import create_key
from gpt2_agent.config import Settings, load_settings
from gpt2_agent.web import i18n
from gpt2_agent.web.security import SECRET_FILE, SESSION_COOKIE, Sessions, Signer, load_secret, safe_next
from tests.web.conftest import register_tiny_model

WEB = Path(__file__).resolve().parents[2] / "src" / "gpt2_agent" / "web"
HTML = {"accept": "text/html"}


def make_settings(home: Path, **extra: Any) -> Settings:
    return load_settings(home=home, plugins=["tests.plugins.sample"], poll_interval_seconds=0.05, **extra)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return create_app(make_settings(tmp_path_factory.mktemp("pages")))


@pytest.fixture(scope="module")
def keys(app: FastAPI) -> dict[str, str]:
    users = {"ada": "admin", "abe": "approver", "sam": "submitter"}
    return {name: create_key(app.state.db, name=name, role=role)[1] for name, role in users.items()}


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def signed_in(app: FastAPI, key: str, lang: str = "en") -> TestClient:
    """A fresh client signed in through the form (cookies kept by the client)."""
    client = TestClient(app, headers={"accept-language": lang})
    page = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_of(page.text), "api_key": key, "next": "/"})
    assert response.status_code == 200 and response.url.path == "/", response.text[:300]
    return client


def say(client: TestClient, message: str) -> str:
    """Send one chat message as the page's htmx form does; the exchange's HTML."""
    page = client.get("/chat").text
    data = {"csrf_token": csrf_of(page), "conversation": "c1", "message": message}
    return client.post("/chat", data=data, headers={"HX-Request": "true"}).text


# --- units ---------------------------------------------------------------------------------------


def test_catalogs_hold_the_same_keys_and_every_key_the_templates_use() -> None:
    en, zh = i18n.catalog("en"), i18n.catalog("zh")
    assert set(en) == set(zh)
    assert all(value.strip() for value in [*en.values(), *zh.values()])
    used: set[str] = set()
    for path in [*WEB.joinpath("templates").rglob("*.html"), *WEB.joinpath("pages").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+[a-z_])["']""", text))
        used |= set(
            re.findall(r'"((?:form|login|keys|approvals|audit|chat|training)\.[a-z_.]+[a-z_])"', text)
        )
    missing = sorted(k for k in used if k not in en and not k.endswith(".html"))
    assert missing == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("en-US,en;q=0.9", "en"),
        ("fr-FR,fr;q=0.9", "en"),
        ("en;q=0.5, zh-TW;q=0.9", "zh"),
        ("zh;q=0, en", "en"),
        ("", "en"),
        (None, "en"),
        ("garbage;q=x,,;", "en"),
    ],
)
def test_language_from_accept_language(header: str | None, expected: str) -> None:
    assert i18n.negotiate(header) == expected


def test_numbers_and_dates_per_language() -> None:
    assert i18n.format_number(1234567.5, "en") == "1,234,567.5"
    assert i18n.format_number(-1000, "zh") == "-1,000"
    assert i18n.format_number(0.1234, "en", decimals=2) == "0.12"
    assert i18n.format_number(None, "en") == "—"
    assert i18n.format_number("NaN", "en") == "NaN"
    assert i18n.format_percent(0.875, "en") == "87.5%"
    assert i18n.format_datetime("2026-01-05T14:03:22+00:00", "en") == "Jan 5, 2026, 14:03:22 UTC"
    assert i18n.format_datetime("2026-01-05T22:03:22+08:00", "zh") == "2026年1月5日 14:03:22 UTC"
    assert i18n.format_datetime("not a date", "zh") == "—"


def test_signed_values_refuse_tampering_and_other_purposes() -> None:
    session = Signer(b"s" * 32, purpose="session")
    token = session.dumps({"k": "key"})
    assert session.loads(token) == {"k": "key"}
    payload, mac = token.split(".")
    assert session.loads(payload + "." + mac[:-2] + "AA") is None
    assert session.loads(payload[:-1] + "x." + mac) is None
    assert Signer(b"s" * 32, purpose="csrf").loads(token) is None
    assert Signer(b"t" * 32, purpose="session").loads(token) is None
    assert session.loads("") is None and session.loads("a.b.c") is None


def test_sessions_expire() -> None:
    sessions = Sessions(b"s" * 32, max_age_seconds=60)
    token = sessions.encode(key="k", name="n", role="admin", key_id=3)
    assert sessions.decode(token) is not None
    old = Signer(b"s" * 32, purpose="session").dumps(
        {"k": "k", "n": "n", "r": "admin", "t": time.time() - 61}
    )
    assert sessions.decode(old) is None


def test_next_paths_stay_on_this_site() -> None:
    assert safe_next("/runs/3?x=1") == "/runs/3?x=1"
    for bad in (
        "https://evil.example/",
        "//evil.example",
        "/\\evil",
        "javascript:alert(1)",
        "/login",
        None,
        "",
    ):
        assert safe_next(bad) == "/"
    assert safe_next("/login?next=/x", allow_auth_pages=True) == "/login?next=/x"


def test_secret_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    first = load_secret(settings)
    assert load_secret(settings) == first and len(first) >= 32
    assert (tmp_path / SECRET_FILE).stat().st_mode & 0o077 == 0
    assert load_secret(load_settings(home=tmp_path, web_session_secret="x" * 20)) == b"x" * 20


def test_assets_are_vendored_with_licences_and_nothing_comes_from_elsewhere() -> None:
    vendor = WEB / "static" / "vendor"
    htmx = (vendor / "htmx" / "htmx.min.js").read_text(encoding="utf-8")
    assert re.search(r'version:"2\.\d+\.\d+"', htmx)
    assert (vendor / "htmx" / "LICENSE").is_file() and (vendor / "uplot" / "LICENSE").is_file()
    assert (vendor / "uplot" / "uPlot.iife.min.js").is_file()
    package = json.loads((WEB.parents[2] / "package.json").read_text(encoding="utf-8"))
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in package["dependencies"].values())
    for path in [*WEB.joinpath("templates").rglob("*.html"), *WEB.joinpath("static").glob("*.*")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(src|href)=\"(https?:)?//", text), path
        assert "<script>" not in text and " style=" not in text, path  # the CSP forbids inline code


# --- over HTTP -------------------------------------------------------------------------------------


def test_pages_need_a_session_and_come_back_after_sign_in(client: TestClient, keys: dict[str, str]) -> None:
    fresh = TestClient(client.app)
    response = fresh.get("/runs?status=failed", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/runs%3Fstatus%3Dfailed"
    page = fresh.get(response.headers["location"])
    assert 'name="next" value="/runs?status=failed"' in page.text
    done = fresh.post(
        "/login",
        data={"csrf_token": csrf_of(page.text), "api_key": keys["sam"], "next": "/runs?status=failed"},
        follow_redirects=False,
    )
    assert done.headers["location"] == "/runs?status=failed"
    cookie = done.headers.get_list("set-cookie")
    session = next(c for c in cookie if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in session and "SameSite=strict" in session and keys["sam"] not in session


def test_wrong_key_gets_one_message_and_no_session(client: TestClient, keys: dict[str, str]) -> None:
    fresh = TestClient(client.app, headers={"accept-language": "zh-CN"})
    page = fresh.get("/login")
    for key in ("g2a_wrong", keys["ada"] + "x", "x" * 5000):
        response = fresh.post("/login", data={"csrf_token": csrf_of(page.text), "api_key": key})
        assert "登录失败，请检查密钥后重试。" in response.text
        assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_forms_without_the_csrf_token_are_refused(app: FastAPI, keys: dict[str, str]) -> None:
    client = signed_in(app, keys["ada"])
    for path, data in (
        ("/keys", {"name": "mallory", "role": "admin"}),
        ("/logout", {}),
        ("/login", {"api_key": keys["ada"]}),
        ("/workflows/sample-approval", {"in.value": "50"}),
    ):
        for token in (None, "forged"):
            body = dict(data, csrf_token=token) if token else data
            response = client.post(path, data=body, headers=HTML, follow_redirects=False)
            assert response.status_code == 403, (path, token)
            assert "Form expired" in response.text
    assert all(
        k["name"] != "mallory" for k in client.get("/api/v1/keys", headers=_bearer(keys["ada"])).json()
    )


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_tampered_or_revoked_sessions_go_back_to_sign_in(app: FastAPI, keys: dict[str, str]) -> None:
    client = signed_in(app, keys["abe"])
    assert client.get("/approvals").status_code == 200
    tampered = client.cookies[SESSION_COOKIE][:-3] + "abc"
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, tampered)
    response = client.get("/approvals", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    # A session whose key is revoked later is sent to sign in on its next page.
    _, secret = create_key(app.state.db, name="temp", role="approver")
    temp = signed_in(app, secret)
    admin = TestClient(app, headers=_bearer(keys["ada"]))
    key_id = next(k["id"] for k in admin.get("/api/v1/keys").json() if k["name"] == "temp")
    admin.delete(f"/api/v1/keys/{key_id}").raise_for_status()
    response = temp.get("/approvals", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/approvals"


def test_security_headers_and_error_pages(app: FastAPI, keys: dict[str, str]) -> None:
    client = signed_in(app, keys["ada"], lang="zh-CN")
    page = client.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    missing = client.get("/no/such/page", headers=HTML)
    assert missing.status_code == 404 and "未找到" in missing.text
    assert client.get("/runs/999999", headers=HTML).status_code == 404
    assert "未找到" in client.get("/logout", headers=HTML).text  # a form's address typed into the bar
    # The API keeps answering in JSON.
    api = client.get("/api/v1/nope", headers={"accept": "application/json"})
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}


def test_a_failing_page_shows_no_traceback(tmp_path: Path, keys: dict[str, str]) -> None:
    app = create_app(make_settings(tmp_path))
    from fastapi import APIRouter

    from gpt2_agent.web.core import WebRoute

    router = APIRouter(route_class=WebRoute)

    @router.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    app.include_router(router)
    with TestClient(app) as client:
        response = client.get("/boom", headers=HTML)
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert "secret internals" not in response.text and "Traceback" not in response.text


def test_roles_decide_what_is_shown(app: FastAPI, keys: dict[str, str]) -> None:
    sam = signed_in(app, keys["sam"])
    home = sam.get("/").text
    assert 'href="/approvals"' not in home and 'href="/keys"' not in home
    assert "Automation rate" not in home  # needs the approvals list, which submitters cannot read
    assert sam.get("/approvals").status_code == 403
    assert sam.get("/keys").status_code == 403
    abe = signed_in(app, keys["abe"])
    assert 'href="/approvals"' in abe.get("/").text
    assert abe.get("/keys").status_code == 403


def test_workflow_form_errors_sit_beside_the_field(app: FastAPI, keys: dict[str, str]) -> None:
    client = signed_in(app, keys["sam"], lang="zh-CN")
    page = client.get("/workflows/sample-approval")
    token = csrf_of(page.text)
    for value, message in (("", "此项必填。"), ("abc", "请输入整数。")):
        response = client.post("/workflows/sample-approval", data={"csrf_token": token, "in.value": value})
        assert f'<p class="field-error" id="in-value-error">{message}</p>' in response.text
        assert 'aria-invalid="true"' in response.text


def test_approval_four_eyes_and_conflict_messages(app: FastAPI, keys: dict[str, str]) -> None:
    api = TestClient(app, headers=_bearer(keys["abe"]))
    with TestClient(app):  # the executor runs the first step
        run = api.post("/api/v1/workflows/sample-approval/runs", json={"input": {"value": 20}}).json()
        deadline = time.monotonic() + 10
        while api.get(f"/api/v1/runs/{run['id']}").json()["status"] != "waiting_approval":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        approval = next(a for a in api.get("/api/v1/approvals").json()["items"] if a["run_id"] == run["id"])
        abe = signed_in(app, keys["abe"])
        token = csrf_of(abe.get("/approvals").text)
        own = abe.post(
            f"/approvals/{approval['id']}/decide",
            data={"csrf_token": token, "decision": "approve"},
            headers={"HX-Request": "true"},
        )
        assert "You submitted this run, so someone else must decide it." in own.text
        ada = signed_in(app, keys["ada"])
        token = csrf_of(ada.get("/approvals").text)
        first = ada.post(
            f"/approvals/{approval['id']}/decide", data={"csrf_token": token, "decision": "reject"}
        )
        assert f"Item #{approval['id']} rejected." in first.text
        again = ada.post(
            f"/approvals/{approval['id']}/decide", data={"csrf_token": token, "decision": "approve"}
        )
        assert f"Item #{approval['id']} was already decided by someone else." in again.text


def test_pages_on_a_server_without_models_say_what_is_missing(app: FastAPI, keys: dict[str, str]) -> None:
    client = signed_in(app, keys["ada"])
    training = client.get("/training").text
    # The shipped configs, the tiny one first; no NLU configs (those train from the CLI).
    assert "<option selected>order-audit.tiny.toml</option>" in training and "nlu.tiny.toml" not in training
    assert client.get("/training/999").status_code == 404
    reply = say(client, "audit order 10023")
    assert "The assistant has no language model yet." in reply and "gpt2-agent train" in reply
    token = csrf_of(client.get("/audit").text)
    result = client.post(
        "/audit", data={"csrf_token": token, "order_no": "10023"}, headers={"HX-Request": "true"}
    ).text
    assert "The audit model is not ready." in result
    malformed = client.post(
        "/audit", data={"csrf_token": token, "order_no": "../x"}, headers={"HX-Request": "true"}
    ).text
    assert "Enter an order number of letters" in malformed


def test_training_form_queues_a_run_with_the_overrides(tmp_path: Path) -> None:
    # No executor: the run stays queued, so this checks the form and the API call only.
    app = create_app(make_settings(tmp_path), start_executor=False)
    admin = create_key(app.state.db, name="ada", role="admin")[1]
    client = signed_in(app, admin)
    token = csrf_of(client.get("/training").text)
    bad = client.post(
        "/training", data={"csrf_token": token, "config": "order-audit.tiny.toml", "batch_size": "0"}
    )
    assert "This value is out of range." in bad.text
    unknown = client.post("/training", data={"csrf_token": token, "config": "nope.toml"})
    assert "unknown config &#39;nope.toml&#39;" in unknown.text
    started = client.post(
        "/training",
        data={
            "csrf_token": token,
            "config": "order-audit.tiny.toml",
            "learning_rate": "3e-4",
            "batch_size": "16",
            "grad_accum_steps": "2",
        },
        follow_redirects=False,
    )
    assert started.status_code == 303
    run_id = int(started.headers["location"].rsplit("/", 1)[1])
    api = TestClient(app, headers={"Authorization": f"Bearer {admin}"})
    run = api.get(f"/api/v1/training-runs/{run_id}").json()
    assert run["status"] == "queued" and run["config"]["file"] == "order-audit.tiny.toml"
    assert run["config"]["overrides"] == ["train.lr=0.0003", "train.batch_size=16", "train.grad_accum=2"]
    task = api.get(f"/api/v1/tasks/{run['task_id']}").json()
    assert task["type"] == "train_model" and task["status"] == "queued"
    detail = client.get(f"/training/{run_id}").text
    assert f"Training run #{run_id}" in detail and "order-audit.tiny" in detail
    curves = client.get(f"/training/{run_id}/data.json").json()["curves"]
    assert curves == {"step": [], "loss": [], "val_loss": []}


def test_chat_with_a_real_model_links_to_the_console(tmp_path: Path, tiny_nlu: Any) -> None:
    app = create_app(make_settings(tmp_path), start_executor=False)
    registry = app.state.registry
    version = registry.register(tiny_nlu.model_dir, "nlu", task="nlu").version
    registry.promote("nlu", version, by="tests")
    sam = create_key(app.state.db, name="sam", role="submitter")[1]
    client = signed_in(app, sam, lang="zh-CN")
    reply = say(client, "帮我审核一下订单 66120")
    # The tiny model knows this one: an audit task is started and linked to its console page.
    assert re.search(r'<a href="/tasks/\d+">任务 #\d+</a>', reply), reply
    assert "/api/v1/" not in reply


def test_models_pages_with_the_registry(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    register_tiny_model(app.state.registry, tmp_path / "outputs")
    admin = create_key(app.state.db, name="ada", role="admin")[1]
    viewer = create_key(app.state.db, name="sam", role="submitter")[1]
    with TestClient(app):
        client = signed_in(app, admin)
        listing = client.get("/models").text
        assert 'href="/models/order-audit"' in listing and "production → v1" in listing
        page = client.get("/models/order-audit").text
        # Metrics side by side, the promotion metric first; history of the alias.
        header = re.search(r"<thead>(.*?)</thead>", page, re.S)
        assert header and header.group(1).index("roc_auc") < header.group(1).index("accuracy")
        assert "0.9300" in page and "0.8100" in page and "first model" in page
        refused = client.post("/models/order-audit/versions/1/promote", data={"csrf_token": csrf_of(page)})
        assert "already there" in refused.text or "Promotion refused" in refused.text
        done = client.post("/models/order-audit/versions/2/promote", data={"csrf_token": csrf_of(page)})
        assert "production → v2" in done.text and "roc_auc 0.93 beats 0.81" in done.text
        bundle = client.get("/models/order-audit/versions/2/download")
        assert bundle.status_code == 200 and bundle.content[:2] == b"\x1f\x8b"  # gzip
        assert "order-audit-2.tar.gz" in bundle.headers["content-disposition"]
        # Submitters see models but get no promote button, and the API refuses them anyway.
        sam = signed_in(app, viewer)
        page = sam.get("/models/order-audit").text
        assert "Download bundle" in page and "Promote" not in page
        assert (
            sam.post("/models/order-audit/versions/1/promote", data={"csrf_token": csrf_of(page)}).status_code
            == 403
        )
