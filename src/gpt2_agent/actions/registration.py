"""Registers the actions that need no model (``send_email``, ``upload_file``) with the engine."""

from __future__ import annotations

from gpt2_agent.actions.mail import SmtpMailer
from gpt2_agent.actions.send_email import send_email_task
from gpt2_agent.actions.storage import FileService, Storage
from gpt2_agent.actions.upload_file import upload_file_task
from gpt2_agent.config import Settings
from gpt2_agent.engine.handlers import HandlerRegistry
from gpt2_agent.store import Database


def register_model_free_actions(registry: HandlerRegistry, settings: Settings, db: Database) -> None:
    """Register ``send_email`` (SMTP from ``settings.smtp_*``) and ``upload_file`` (storage under
    ``settings.storage_path``)."""
    files = FileService(db, Storage(settings.storage_path), settings)
    registry.register(send_email_task(SmtpMailer.from_settings(settings), files))
    registry.register(upload_file_task(files))
