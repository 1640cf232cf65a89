"""send_email against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from pydantic import SecretStr

from gpt2_agent.actions.mail import SmtpMailer, build_message, message_id_for, parse_address
from gpt2_agent.actions.send_email import SendEmailInput, SendEmailOutput, send_email_task
from gpt2_agent.actions.storage import FileService, Storage
from gpt2_agent.config import Settings
from gpt2_agent.engine.errors import InvalidInput, PermanentError, RetryableError
from gpt2_agent.engine.handlers import TaskContext, TaskType
from gpt2_agent.store import Database

from .conftest import SmtpServer, free_port

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x01" * 64


@pytest.fixture
def local_files(sqlite_db: Database, settings: Settings) -> FileService:
    return FileService(sqlite_db, Storage(settings.storage_path), settings)


def _task(
    server: SmtpServer | None, files: FileService, **kwargs: object
) -> TaskType[SendEmailInput, SendEmailOutput]:
    host, port = (server.host, server.port) if server else ("127.0.0.1", free_port())
    options: dict[str, object] = {"sender": "Order Desk <orders@shop.example>", "timeout_seconds": 5.0}
    options.update(kwargs)
    return send_email_task(SmtpMailer(host, port, **options), files)  # type: ignore[arg-type]


def _ctx(key: str = "run-7/notify", task_id: int = 1) -> TaskContext:
    return TaskContext(task_id=task_id, attempt=1, idempotency_key=key)


def _run(
    task: TaskType[SendEmailInput, SendEmailOutput], data: dict[str, object], key: str = "run-7/notify"
) -> SendEmailOutput:
    return task.fn(_ctx(key), task.parse_input(data))


def _received(server: SmtpServer, index: int = -1) -> EmailMessage:
    msg = email.message_from_bytes(server.sink.messages[index].content, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_plain_text(smtp_server: SmtpServer, local_files: FileService) -> None:
    out = _run(
        _task(smtp_server, local_files),
        {
            "to": "alice@example.com",
            "cc": ["Bob <bob@example.com>"],
            "subject": "Order 42 paid",
            "body": "Thanks!",
        },
    )
    assert out.accepted == ["alice@example.com", "bob@example.com"] and out.refused == {}
    assert out.message_id == message_id_for("run-7/notify") and out.sent_at.tzinfo is not None
    envelope = smtp_server.sink.messages[0]
    assert envelope.mail_from == "orders@shop.example"
    assert envelope.rcpt_tos == ["alice@example.com", "bob@example.com"]
    msg = _received(smtp_server)
    assert msg["Message-ID"] == out.message_id
    assert (
        msg["Subject"] == "Order 42 paid"
        and msg["To"] == "alice@example.com"
        and msg["Cc"] == "Bob <bob@example.com>"
    )
    assert msg["From"] == "Order Desk <orders@shop.example>"
    assert msg.get_content_type() == "text/plain" and msg.get_content().strip() == "Thanks!"


def test_html_alternative(smtp_server: SmtpServer, local_files: FileService) -> None:
    _run(
        _task(smtp_server, local_files),
        {
            "to": ["Sales, Dept <sales@example.com>"],
            "subject": "Bestellung 42 bezahlt — 订单",
            "body": "Plain body",
            "html": "<p>HTML <b>body</b></p>",
        },
    )
    msg = _received(smtp_server)
    assert msg.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}  # type: ignore[attr-defined]
    assert parts["text/plain"].strip() == "Plain body" and "<b>body</b>" in parts["text/html"]
    assert msg["Subject"] == "Bestellung 42 bezahlt — 订单"
    assert msg["To"].addresses[0].display_name == "Sales, Dept"


def test_attachments_from_storage(smtp_server: SmtpServer, local_files: FileService) -> None:
    png = local_files.save_bytes(PNG, "../../scans/receipt\u202e.png", "image/png")
    txt = local_files.save_bytes("总计 19.90 EUR\n".encode(), "报告.txt")
    _run(
        _task(smtp_server, local_files),
        {
            "to": "a@example.com",
            "subject": "Receipt",
            "body": "Attached.",
            "html": "<p>Attached.</p>",
            "attachments": [png.id, txt.id],
        },
    )
    msg = _received(smtp_server)
    assert msg.get_content_type() == "multipart/mixed"
    body = msg.get_body(preferencelist=("html",))
    assert body is not None and "Attached." in body.get_content()
    attached = {p.get_filename(): p for p in msg.iter_attachments()}  # type: ignore[attr-defined]
    assert set(attached) == {"receipt.png", "报告.txt"}
    assert attached["receipt.png"].get_content_type() == "image/png"
    assert attached["receipt.png"].get_content() == PNG
    assert attached["报告.txt"].get_content() == "总计 19.90 EUR\n"


def test_message_id_is_stable_per_idempotency_key(smtp_server: SmtpServer, local_files: FileService) -> None:
    task = _task(smtp_server, local_files)
    data = {"to": "a@example.com", "subject": "s", "body": "b"}
    first = _run(task, data, key="run-9/email")
    retry = task.fn(TaskContext(task_id=1, attempt=2, idempotency_key="run-9/email"), task.parse_input(data))
    other = _run(task, data, key="run-10/email")
    assert first.message_id == retry.message_id != other.message_id
    assert [_received(smtp_server, i)["Message-ID"] for i in range(3)] == [first.message_id] * 2 + [
        other.message_id
    ]
    assert first.message_id.startswith("<") and first.message_id.endswith("@gpt2-agent>")
    assert len(first.message_id) == len("<@gpt2-agent>") + 32


def test_empty_key_falls_back_to_task_id(smtp_server: SmtpServer, local_files: FileService) -> None:
    task = _task(smtp_server, local_files)
    data = task.parse_input({"to": "a@example.com", "subject": "s", "body": "b"})
    a = task.fn(TaskContext(task_id=1, attempt=1, idempotency_key=""), data)
    b = task.fn(TaskContext(task_id=2, attempt=1, idempotency_key=""), data)
    assert a.message_id != b.message_id


def test_connection_refused_is_retryable(local_files: FileService) -> None:
    with pytest.raises(RetryableError, match="ConnectionRefusedError"):
        _run(_task(None, local_files), {"to": "a@example.com", "subject": "s", "body": "b"})


def test_recipient_refused_is_permanent(smtp_server: SmtpServer, local_files: FileService) -> None:
    smtp_server.sink.refuse["nobody@example.com"] = "550 5.1.1 No such user"
    with pytest.raises(PermanentError, match="550"):
        _run(_task(smtp_server, local_files), {"to": "nobody@example.com", "subject": "s", "body": "b"})
    assert smtp_server.sink.messages == []


def test_temporary_recipient_refusal_is_retryable(smtp_server: SmtpServer, local_files: FileService) -> None:
    smtp_server.sink.refuse["busy@example.com"] = "451 4.3.0 Mailbox busy, try later"
    with pytest.raises(RetryableError, match="451"):
        _run(_task(smtp_server, local_files), {"to": "busy@example.com", "subject": "s", "body": "b"})


def test_partial_refusal_delivers_to_the_rest(smtp_server: SmtpServer, local_files: FileService) -> None:
    smtp_server.sink.refuse["gone@example.com"] = "550 5.1.1 No such user"
    out = _run(
        _task(smtp_server, local_files),
        {"to": ["ok@example.com", "gone@example.com"], "subject": "s", "body": "b"},
    )
    assert out.accepted == ["ok@example.com"]
    assert out.refused["gone@example.com"].startswith("550")
    assert smtp_server.sink.messages[0].rcpt_tos == ["ok@example.com"]


@pytest.mark.parametrize(
    ("reply", "error"),
    [("554 5.6.0 Content rejected", PermanentError), ("452 4.3.1 Disk full", RetryableError)],
)
def test_data_reply_codes(
    smtp_server: SmtpServer, local_files: FileService, reply: str, error: type[Exception]
) -> None:
    smtp_server.sink.data_reply = reply
    with pytest.raises(error, match=reply[:3]):
        _run(_task(smtp_server, local_files), {"to": "a@example.com", "subject": "s", "body": "b"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Hello\r\nBcc: victim@example.com"),
        ("subject", "Hello\nBcc: victim@example.com"),
        ("subject", "Hello\rX-Spam: yes"),
        ("subject", "Hello\u2028X: y"),
        ("to", "a@example.com\r\nBcc: victim@example.com"),
        ("to", ["a@example.com\nBcc: victim@example.com"]),
        ("cc", ["Eve\r\n <eve@example.com>"]),
    ],
)
def test_header_injection_is_refused(local_files: FileService, field: str, value: object) -> None:
    data: dict[str, object] = {"to": "a@example.com", "subject": "s", "body": "b", field: value}
    with pytest.raises(InvalidInput, match="header injection") as info:
        _task(None, local_files).parse_input(data)
    assert info.value.errors[0]["field"].startswith(field)


@pytest.mark.parametrize(
    "value",
    [
        "not-an-address",
        "a@b@c.com",
        "a@example.com, b@example.com",
        "<>",
        "a@-bad-.com",
        "a @example.com",
        "x" * 65 + "@e.com",
    ],
)
def test_invalid_addresses_are_refused(local_files: FileService, value: str) -> None:
    with pytest.raises(InvalidInput, match="to"):
        _task(None, local_files).parse_input({"to": [value], "subject": "s", "body": "b"})


def test_input_needs_a_recipient(local_files: FileService) -> None:
    with pytest.raises(InvalidInput, match="to"):
        _task(None, local_files).parse_input({"to": [], "subject": "s", "body": "b"})


def test_build_message_refuses_injection_too() -> None:
    from gpt2_agent.actions.mail import OutgoingEmail

    mail = OutgoingEmail(
        to=[parse_address("a@example.com")], subject="x\r\nBcc: e@example.com", body="b", message_id="<1@x>"
    )
    with pytest.raises(ValueError, match="header injection"):
        build_message(mail, "me@example.com")


def test_missing_attachment_is_permanent(smtp_server: SmtpServer, local_files: FileService) -> None:
    with pytest.raises(PermanentError, match="attachment"):
        _run(
            _task(smtp_server, local_files),
            {"to": "a@example.com", "subject": "s", "body": "b", "attachments": [424242]},
        )
    assert smtp_server.sink.messages == []


def test_missing_blob_is_permanent(smtp_server: SmtpServer, local_files: FileService) -> None:
    row = local_files.save_bytes(b"to be lost", "lost.txt")
    Path(local_files.storage.path(row.sha256)).unlink()
    with pytest.raises(PermanentError, match="missing"):
        _run(
            _task(smtp_server, local_files),
            {"to": "a@example.com", "subject": "s", "body": "b", "attachments": [row.id]},
        )


def test_login(smtp_server: SmtpServer, local_files: FileService) -> None:
    data = {"to": "a@example.com", "subject": "s", "body": "b"}
    out = _run(_task(smtp_server, local_files, user="agent", password=SecretStr("s3cret")), data)
    assert out.accepted == ["a@example.com"]
    with pytest.raises(PermanentError, match="535"):
        _run(_task(smtp_server, local_files, user="agent", password=SecretStr("wrong")), data)


def test_starttls_required_but_not_offered_is_permanent(
    smtp_server: SmtpServer, local_files: FileService
) -> None:
    with pytest.raises(PermanentError, match="STARTTLS"):
        _run(
            _task(smtp_server, local_files, starttls=True),
            {"to": "a@example.com", "subject": "s", "body": "b"},
        )
    assert smtp_server.sink.messages == []


def test_cancelled_task_sends_nothing(smtp_server: SmtpServer, local_files: FileService) -> None:
    task = _task(smtp_server, local_files)
    ctx = _ctx()
    ctx.cancelled.set()
    with pytest.raises(PermanentError, match="cancelled"):
        task.fn(ctx, task.parse_input({"to": "a@example.com", "subject": "s", "body": "b"}))
    assert smtp_server.sink.messages == []


def test_mailer_from_settings(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, smtp_host="mail.internal", smtp_port=587, smtp_starttls=True, smtp_from="a@b.example"
    )
    mailer = SmtpMailer.from_settings(settings)
    assert (mailer.host, mailer.port, mailer.starttls, mailer.sender) == (
        "mail.internal",
        587,
        True,
        "a@b.example",
    )
    with pytest.raises(ValueError, match="address"):
        SmtpMailer.from_settings(Settings(home=tmp_path, smtp_from="bad\r\nBcc: x@y.z"))
