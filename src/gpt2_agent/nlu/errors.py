"""The NLU's exception tree. None of these knows HTTP; the API maps them to status codes.

NluError
├── TrainingDataError        (a training data file is malformed; names file, item and line)
├── InvalidText              (empty or whitespace-only text: 422, ``field`` names the input field)
│   └── TextTooLong          (longer than ``settings.nlu_max_text_chars``: 413)
├── InvalidConversationId    (not 1-64 characters of ``[A-Za-z0-9_-]``: 422)
├── ConversationNotFound     (the id belongs to another user: 404, so ids of others stay secret)
├── ConversationBusy         (another reply to the same conversation was saved first: 409, retry)
└── NluModelNotReady         (no ``production`` version of the model: 503; also a serving ModelNotReady)
"""

from __future__ import annotations

from gpt2_agent.serving.errors import ModelNotReady


class NluError(Exception):
    """Base of every error the NLU raises on purpose."""


class TrainingDataError(NluError, ValueError):
    """Training data cannot be read; the message names the file, the item and the problem."""


class InvalidText(NluError, ValueError):
    """The text to parse is unusable (empty, whitespace only). ``field`` is the request field."""

    def __init__(self, message: str, *, field: str = "text") -> None:
        super().__init__(message)
        self.field = field


class TextTooLong(InvalidText):
    """The text is longer than the configured limit (``limit`` characters)."""

    def __init__(self, length: int, limit: int, *, field: str = "text") -> None:
        super().__init__(f"{field} is {length} characters long; the limit is {limit}", field=field)
        self.length = length
        self.limit = limit


class InvalidConversationId(NluError, ValueError):
    """A conversation id that is not 1-64 characters of letters, digits, ``_`` and ``-``."""

    field = "conversation_id"


class ConversationNotFound(NluError, LookupError):
    """The conversation does not exist for this user."""


class ConversationBusy(NluError):
    """A concurrent reply changed the conversation first; the request may be retried."""


class NluModelNotReady(NluError, ModelNotReady):
    """No version of the NLU model is served yet."""


__all__ = [
    "ConversationBusy",
    "ConversationNotFound",
    "InvalidConversationId",
    "InvalidText",
    "NluError",
    "NluModelNotReady",
    "TextTooLong",
    "TrainingDataError",
]
