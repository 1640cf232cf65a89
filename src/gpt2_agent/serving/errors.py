"""The serving runtime's exception tree. The API maps these to status codes.

ServingError
├── ModelNotReady     (no version under the served alias: 503, the message names the training command)
├── UnsupportedTask   (predict() on a model whose head it cannot serve: 400/422)
└── ServingClosed     (the runtime was closed: 503)
"""

from __future__ import annotations


class ServingError(Exception):
    """Base of every error the serving runtime raises on purpose."""


class ModelNotReady(ServingError):
    """The model has no version under the served alias (usually: not trained or not promoted yet).

    ``model`` is the model name and ``hint`` the command that trains it; the message contains both.
    """

    def __init__(self, model: str, hint: str, *, alias: str = "production") -> None:
        super().__init__(f"model {model!r} has no {alias} version yet; train and promote one: {hint}")
        self.model = model
        self.hint = hint
        self.alias = alias


class UnsupportedTask(ServingError):
    """``predict`` was asked of a model whose task head it does not serve (use ``run`` instead)."""


class ServingClosed(ServingError):
    """The runtime was closed; no further requests are accepted."""


__all__ = ["ModelNotReady", "ServingClosed", "ServingError", "UnsupportedTask"]
