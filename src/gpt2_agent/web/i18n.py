"""Languages of the console: message catalogs, ``Accept-Language`` negotiation, number and date formats.

Catalogs are flat JSON files in ``web/i18n/<lang>.json`` (``{"key": "text with {placeholders}"}``);
both languages must hold the same keys (a test checks it).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any

log = logging.getLogger(__name__)

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "en"
LANG_COOKIE = "g2a_lang"
# What <html lang> and Intl in the browser get for each language.
BCP47 = {"zh": "zh-CN", "en": "en"}
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@cache
def catalog(lang: str) -> dict[str, str]:
    """The messages of ``lang`` (loaded once)."""
    text = (resources.files("gpt2_agent.web") / "i18n" / f"{lang}.json").read_text(encoding="utf-8")
    messages: dict[str, str] = json.loads(text)
    return messages


def negotiate(accept_language: str | None) -> str:
    """The best of our languages for an ``Accept-Language`` header (q-values honoured)."""
    best, best_q = DEFAULT_LANGUAGE, -1.0
    for position, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        lang = tag.split("-")[0]
        # Earlier entries win ties, as the header lists preferences in order.
        score = q - position * 1e-6
        if lang in LANGUAGES and q > 0 and score > best_q:
            best, best_q = lang, score
    return best


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    """The user's choice from the cookie, else the browser's preference."""
    if cookie in LANGUAGES:
        assert cookie is not None
        return cookie
    return negotiate(accept_language)


def _group(digits: str) -> str:
    out: list[str] = []
    while len(digits) > 3:
        out.insert(0, digits[-3:])
        digits = digits[:-3]
    out.insert(0, digits)
    return ",".join(out)


def format_number(value: Any, lang: str, *, decimals: int | None = None) -> str:
    """``1234567.5`` → ``1,234,567.5`` (both languages group by thousands with these separators)."""
    if value is None or value == "":
        return "—"
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if not number.is_finite():
        return str(value)
    if decimals is not None:
        number = number.quantize(Decimal(1).scaleb(-decimals))
    sign = "-" if number < 0 else ""
    text = format(abs(number), "f")
    whole, _, frac = text.partition(".")
    if decimals is None and frac:
        frac = frac.rstrip("0")
    return sign + _group(whole) + ("." + frac if frac else "")


def format_percent(value: Any, lang: str, *, decimals: int = 1) -> str:
    """``0.875`` → ``87.5%``."""
    if value is None:
        return "—"
    try:
        return format_number(float(value) * 100, lang, decimals=decimals) + "%"
    except (TypeError, ValueError):
        return str(value)


def parse_datetime(value: Any) -> dt.datetime | None:
    """A datetime from an ISO 8601 string (what the API sends) or a datetime; naive means UTC."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def format_datetime(value: Any, lang: str) -> str:
    """A UTC timestamp in the language's style; the browser rewrites it in the viewer's time zone."""
    when = parse_datetime(value)
    if when is None:
        return "—"
    clock = when.strftime("%H:%M:%S")
    if lang == "zh":
        return f"{when.year}年{when.month}月{when.day}日 {clock} UTC"
    return f"{_MONTHS_EN[when.month - 1]} {when.day}, {when.year}, {clock} UTC"


@dataclass(frozen=True)
class Translator:
    """Message lookup for one language; unknown keys fall back to English, then to the key itself."""

    lang: str

    def __call__(self, key: str, /, **values: Any) -> str:
        text = catalog(self.lang).get(key)
        if text is None:
            text = catalog(DEFAULT_LANGUAGE).get(key)
            if text is None:
                log.warning("missing message %r", key)
                return key
        if values:
            try:
                return text.format(**values)
            except (KeyError, IndexError, ValueError):
                log.warning("bad placeholders in message %r", key)
        return text

    def has(self, key: str) -> bool:
        """Whether ``key`` is in the catalog."""
        return key in catalog(self.lang)

    @property
    def bcp47(self) -> str:
        return BCP47[self.lang]
