"""Model names, alias names and references such as ``order-audit:production`` or ``order-audit:3``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gpt2_agent.registry.errors import InvalidName

# Names become folder names, so they are lowercase (case-insensitive file systems) and never
# contain separators, dots or the ":" that splits a reference.
MODEL_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
# Aliases start with a letter so they can never be mistaken for a version number.
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
LATEST = "latest"  # resolves to the newest version; reserved, cannot be set as an alias
PRODUCTION = "production"
CANDIDATE = "candidate"


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`InvalidName`."""
    if not MODEL_NAME_RE.match(name):
        raise InvalidName(
            f"invalid model name {name!r}: use 1-100 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def check_alias(alias: str) -> str:
    """Return ``alias`` if it may be set on a version, else raise :class:`InvalidName`."""
    if not ALIAS_RE.match(alias):
        raise InvalidName(
            f"invalid alias {alias!r}: use 1-64 lowercase letters, digits, '-' or '_', starting with a letter"
        )
    if alias == LATEST:
        raise InvalidName(f"{LATEST!r} is reserved (it always means the newest version)")
    return alias


@dataclass(frozen=True)
class Ref:
    """A parsed reference: a model name and either a version number or an alias (or neither)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}:{self.alias}" if self.alias else self.name


def parse_ref(ref: str, selector: str | int | None = None) -> Ref:
    """Parse ``"name"``, ``"name:3"``, ``"name:production"`` (or ``name`` plus a separate selector)."""
    name, sep, rest = ref.partition(":")
    if sep and selector is not None:
        raise InvalidName(f"reference {ref!r} already names a version or alias; got {selector!r} as well")
    check_model_name(name)
    sel = rest if sep else selector
    if sel is None or sel == "":
        return Ref(name)
    if isinstance(sel, int) or sel.isdigit():
        version = int(sel)
        if version < 1:
            raise InvalidName(f"version numbers start at 1, got {sel!r}")
        return Ref(name, version=version)
    if sel != LATEST:
        check_alias(sel)
    return Ref(name, alias=sel)
