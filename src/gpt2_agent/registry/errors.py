"""The registry's exception tree. Callers (API, CLI) map these to status codes and exit codes.

RegistryError
├── NotFound            (model, version or alias does not exist)
├── InvalidName         (a model or alias name that is not allowed)
├── InvalidArtifact     (a folder or bundle that must not enter the registry)
│   └── ChecksumMismatch (a stored file no longer matches its recorded SHA-256)
└── PromotionRefused    (the promotion gate said no; the message quotes both metric values)
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base of every error the registry raises on purpose."""


class NotFound(RegistryError):
    """A model, version or alias that does not exist."""


class InvalidName(RegistryError, ValueError):
    """A model or alias name outside the allowed pattern."""


class InvalidArtifact(RegistryError):
    """A model folder or bundle that fails validation (pickle files, broken safetensors, traversal...)."""


class ChecksumMismatch(InvalidArtifact):
    """Files of a registered version differ from the SHA-256 digests recorded at registration."""

    def __init__(self, message: str, problems: dict[str, str]) -> None:
        super().__init__(message)
        self.problems = problems  # relative path -> "modified" | "missing" | "unexpected"


class PromotionRefused(RegistryError):
    """The promotion gate refused to move an alias; ``force=True`` overrides."""
