"""The SMTP adapter: builds a MIME message and sends it, translating SMTP failures into task errors.

Failures that may pass (connection refused or dropped, timeouts, 4xx replies) become
:class:`RetryableError`; those that will not (5xx replies, a server without STARTTLS when it is
required, bad credentials, an untrusted certificate) become :class:`PermanentError`.

The Message-ID is derived from the step's idempotency key, so every retry of a step sends the same
Message-ID and a receiver or sink can drop the duplicate if an earlier attempt did get through.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from pydantic import SecretStr

from gpt2_agent.config import Settings
from gpt2_agent.engine.errors import PermanentError, RetryableError

logger = logging.getLogger(__name__)

MESSAGE_ID_DOMAIN = "gpt2-agent"

_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDR_SPEC = re.compile(rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})*")
_NAMED = re.compile(r"(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]*)>")
# Line breaks of every kind: a CR or LF in a header would let input add headers of its own.
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")


def check_header_text(value: str, what: str) -> str:
    """``value`` if it is safe in a mail header; :class:`ValueError` naming ``what`` otherwise."""
    if _LINE_BREAKS.search(value):
        raise ValueError(f"{what} must not contain CR, LF or other line breaks (header injection)")
    if _CONTROLS.search(value):
        raise ValueError(f"{what} must not contain control characters")
    return value


def parse_address(value: str) -> Address:
    """Parse ``user@example.com`` or ``Display Name <user@example.com>`` (one address, ASCII).

    Raises :class:`ValueError` with a message saying what is wrong.
    """
    check_header_text(value, "address")
    text = value.strip()
    name = ""
    match = _NAMED.fullmatch(text)
    if match:
        name, text = match["name"].strip(), match["addr"].strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1]
        if '"' in name or "\\" in name:
            raise ValueError(f"display name of {value!r} must not contain quotes or backslashes")
    if len(text) > 254 or not _ADDR_SPEC.fullmatch(text):
        raise ValueError(f"not a valid e-mail address: {value!r} (one address per item)")
    local, _, domain = text.rpartition("@")
    if len(local) > 64:
        raise ValueError(f"local part of {value!r} is longer than 64 characters")
    return Address(display_name=name, username=local, domain=domain)


def message_id_for(idempotency_key: str) -> str:
    """``<sha256(key)[:32]@gpt2-agent>``: the same key gives the same Message-ID."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{MESSAGE_ID_DOMAIN}>"


@dataclass(frozen=True)
class Attachment:
    """A file to attach; ``filename`` is a sanitised display name."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class OutgoingEmail:
    """Everything that goes into one message."""

    to: list[Address]
    subject: str
    body: str
    message_id: str
    cc: list[Address] = field(default_factory=list)
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def recipients(self) -> list[str]:
        """Envelope recipients (To then Cc), without duplicates."""
        return list(dict.fromkeys(a.addr_spec for a in [*self.to, *self.cc]))


@dataclass(frozen=True)
class SendResult:
    """What the server accepted. ``refused`` maps an address to the server's reply."""

    message_id: str
    accepted: list[str]
    refused: dict[str, str]
    sent_at: dt.datetime


def build_message(email: OutgoingEmail, sender: str, *, now: dt.datetime | None = None) -> EmailMessage:
    """The MIME message: text/plain, or multipart/alternative with HTML, inside multipart/mixed
    when there are attachments."""
    msg = EmailMessage()
    msg["From"] = parse_address(sender)
    msg["To"] = email.to
    if email.cc:
        msg["Cc"] = email.cc
    msg["Subject"] = check_header_text(email.subject, "subject")
    msg["Date"] = format_datetime(now or dt.datetime.now(dt.UTC))
    msg["Message-ID"] = email.message_id
    msg.set_content(email.body)
    if email.html is not None:
        msg.add_alternative(email.html, subtype="html")
    for item in email.attachments:
        maintype, _, subtype = item.content_type.partition("/")
        subtype = subtype.split(";", 1)[0].strip()
        if not maintype or not subtype:
            maintype, subtype = "application", "octet-stream"
        # Stored text is UTF-8 (the sniffer checked it); say so, or readers assume ASCII.
        params = {"charset": "utf-8"} if maintype == "text" else None
        msg.add_attachment(
            item.data, maintype=maintype, subtype=subtype, filename=item.filename, params=params
        )
    return msg


class SmtpMailer:
    """Sends messages through one SMTP server (a new connection per message)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        user: str | None = None,
        password: SecretStr | None = None,
        starttls: bool = False,
        timeout_seconds: float = 10.0,
    ) -> None:
        parse_address(sender)  # a bad From fails at start-up, not on the first e-mail
        self.host = host
        self.port = port
        self.sender = sender
        self.user = user
        self.password = password
        self.starttls = starttls
        self.timeout_seconds = timeout_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpMailer:
        """A mailer for ``settings.smtp_*``."""
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.smtp_from,
            user=settings.smtp_user,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            timeout_seconds=settings.smtp_timeout_seconds,
        )

    def send(self, email: OutgoingEmail) -> SendResult:
        """Send ``email``; raise :class:`RetryableError` or :class:`PermanentError` on failure.

        When the server refuses some recipients but accepts others the message was delivered,
        so this returns (``refused`` lists the others) rather than raise and re-send on retry.
        """
        msg = build_message(email, self.sender)
        envelope_from = parse_address(self.sender).addr_spec
        recipients = email.recipients
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds) as smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.user:
                    password = self.password.get_secret_value() if self.password else ""
                    smtp.login(self.user, password)
                refused = smtp.send_message(msg, from_addr=envelope_from, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _recipients_error(exc) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentError(f"SMTP server {self.host}:{self.port}: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            raise _reply_error(self.host, self.port, exc.smtp_code, exc.smtp_error) from exc
        except ssl.SSLCertVerificationError as exc:
            raise PermanentError(f"SMTP server {self.host}:{self.port}: TLS certificate: {exc}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Connection refused or reset, DNS failure, timeout, server hung up: try again later.
            raise RetryableError(f"SMTP server {self.host}:{self.port}: {type(exc).__name__}: {exc}") from exc
        refused_text = {addr: f"{code} {_text(reply)}" for addr, (code, reply) in refused.items()}
        accepted = [r for r in recipients if r not in refused]
        if refused_text:
            logger.warning("message %s: recipients refused: %s", email.message_id, refused_text)
        logger.info("sent message %s to %d recipient(s)", email.message_id, len(accepted))
        return SendResult(email.message_id, accepted, refused_text, dt.datetime.now(dt.UTC))


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", errors="replace") if isinstance(reply, bytes) else str(reply)


def _reply_error(host: str, port: int, code: int, reply: bytes | str) -> RetryableError | PermanentError:
    message = f"SMTP server {host}:{port} replied {code} {_text(reply)}"
    # 4xx is a temporary refusal (greylisting, mailbox busy, rate limit); 5xx is final.
    return RetryableError(message) if 400 <= code < 500 or code == -1 else PermanentError(message)


def _recipients_error(exc: smtplib.SMTPRecipientsRefused) -> RetryableError | PermanentError:
    details = {addr: f"{code} {_text(reply)}" for addr, (code, reply) in exc.recipients.items()}
    message = f"all recipients refused: {details}"
    # Worth a retry only if some refusal was temporary; a 550 "no such user" will not change.
    if any(400 <= code < 500 for code, _ in exc.recipients.values()):
        return RetryableError(message)
    return PermanentError(message)
