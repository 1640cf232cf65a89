"""Business actions: typed handlers registered with the engine, each behind an adapter."""

from gpt2_agent.actions.registration import register_model_free_actions
from gpt2_agent.actions.storage import (
    FileService,
    Storage,
    StorageError,
    TooLarge,
    UnknownFile,
    sanitize_display_name,
    sniff_content_type,
)

__all__ = [
    "FileService",
    "Storage",
    "StorageError",
    "TooLarge",
    "UnknownFile",
    "register_model_free_actions",
    "sanitize_display_name",
    "sniff_content_type",
]
