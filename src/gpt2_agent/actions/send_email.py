"""The ``send_email`` action: one e-mail through SMTP, with stored files as attachments.

Input example::

    {"to": ["alice@example.com"], "cc": [], "subject": "Order 42 paid",
     "body": "Thank you ...", "html": "<p>Thank you ...</p>", "attachments": [17]}
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gpt2_agent.actions.mail import Attachment, OutgoingEmail, SmtpMailer, check_header_text, message_id_for
from gpt2_agent.actions.mail import parse_address as _parse_address
from gpt2_agent.actions.storage import BlobNotFound, FileService, UnknownFile
from gpt2_agent.engine.errors import PermanentError
from gpt2_agent.engine.handlers import RetryPolicy, TaskContext, TaskType

TASK_NAME = "send_email"
MAX_RECIPIENTS = 100
MAX_ATTACHMENTS = 20
# Most receiving servers refuse messages above 25 MB; base64 adds a third on top of this.
MAX_ATTACHMENT_BYTES = 18 * 1024 * 1024


def _addresses(value: Any) -> Any:
    if isinstance(value, str):
        return [value]  # one address may be given without a list
    return value


class SendEmailInput(BaseModel):
    """What to send. Addresses are ``user@example.com`` or ``Name <user@example.com>``."""

    model_config = ConfigDict(extra="forbid")

    to: list[str] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    cc: list[str] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    subject: str = Field(max_length=998)
    body: str
    html: str | None = None
    attachments: list[int] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)

    _as_list = field_validator("to", "cc", mode="before")(_addresses)

    @field_validator("to", "cc")
    @classmethod
    def _valid_addresses(cls, value: list[str]) -> list[str]:
        return [str(_parse_address(item)) for item in value]

    @field_validator("subject")
    @classmethod
    def _valid_subject(cls, value: str) -> str:
        return check_header_text(value, "subject")


class SendEmailOutput(BaseModel):
    """What the SMTP server accepted."""

    message_id: str
    accepted: list[str]
    refused: dict[str, str] = Field(default_factory=dict)
    sent_at: dt.datetime


def send_email_task(mailer: SmtpMailer, files: FileService) -> TaskType[SendEmailInput, SendEmailOutput]:
    """The ``send_email`` task type bound to an SMTP adapter and the file service."""

    def send_email(ctx: TaskContext, inp: SendEmailInput) -> SendEmailOutput:
        attachments = _load_attachments(files, inp.attachments)
        # An empty key would give every keyless task the same Message-ID; the task id is stable too.
        key = ctx.idempotency_key or f"task-{ctx.task_id}"
        email = OutgoingEmail(
            to=[_parse_address(a) for a in inp.to],
            cc=[_parse_address(a) for a in inp.cc],
            subject=inp.subject,
            body=inp.body,
            html=inp.html,
            attachments=attachments,
            message_id=message_id_for(key),
        )
        ctx.check_cancelled()
        result = mailer.send(email)
        return SendEmailOutput(
            message_id=result.message_id,
            accepted=result.accepted,
            refused=result.refused,
            sent_at=result.sent_at,
        )

    return TaskType(
        name=TASK_NAME,
        input_model=SendEmailInput,
        output_model=SendEmailOutput,
        fn=send_email,
        retry=RetryPolicy(
            max_attempts=5, initial_backoff_seconds=5.0, multiplier=3.0, max_backoff_seconds=600.0
        ),
        timeout_seconds=max(60.0, mailer.timeout_seconds * 6),
        description="Send an e-mail (plain text, optional HTML, stored files as attachments) through SMTP.",
    )


def _load_attachments(files: FileService, file_ids: list[int]) -> list[Attachment]:
    out: list[Attachment] = []
    total = 0
    for file_id in file_ids:
        try:
            row = files.get(file_id)
        except UnknownFile as exc:
            raise PermanentError(f"attachment: {exc}") from exc
        total += row.size
        if total > MAX_ATTACHMENT_BYTES:
            raise PermanentError(f"attachments exceed {MAX_ATTACHMENT_BYTES} bytes in total")
        try:
            with files.storage.open(row.sha256) as fh:
                data = fh.read()
        except BlobNotFound as exc:
            raise PermanentError(f"attachment {file_id}: the stored bytes are missing") from exc
        out.append(Attachment(filename=row.original_name, content_type=row.content_type, data=data))
    return out
