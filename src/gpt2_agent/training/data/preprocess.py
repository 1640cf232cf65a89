"""Text preprocessing: Unicode normalization, stop-word removal, de-duplication, and a
deterministic train/validation/test split by key.

The split hashes a key (for orders, the order number) into ``[0, 1)`` with SHA-256, so a key
lands in the same split on every machine, in every run, whatever else is in the data set; all
records sharing a key share a split, so no order can leak from training into evaluation.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal, TypeVar

from gpt2_agent.training.data.errors import SourceSpecError

T = TypeVar("T")
NormalForm = Literal["NFC", "NFKC", "NFD", "NFKD"]
SplitName = Literal["train", "validation", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "validation", "test")
STOPWORD_LANGUAGES = ("en", "zh")

_WHITESPACE = re.compile(r"\s+")


def normalize_text(
    text: str,
    *,
    form: NormalForm | None = "NFKC",
    lowercase: bool = False,
    collapse_whitespace: bool = True,
) -> str:
    """Normalize ``text``: Unicode ``form`` (NFKC folds full-width ``ＵＲＧＥＮＴ`` to ``URGENT``),
    optional lower-casing, and runs of whitespace collapsed to one space."""
    if form is not None:
        if form not in ("NFC", "NFKC", "NFD", "NFKD"):
            raise SourceSpecError(f"unknown normalization form {form!r}; expected NFC, NFKC, NFD or NFKD")
        text = unicodedata.normalize(form, text)
    if lowercase:
        text = text.lower()
    if collapse_whitespace:
        text = _WHITESPACE.sub(" ", text).strip()
    return text


# --- stop words -----------------------------------------------------------------------------------


@functools.cache
def load_stopwords(language: str) -> frozenset[str]:
    """The packaged stop-word list for ``language`` ("en" or "zh"); ``#`` lines are comments."""
    if language not in STOPWORD_LANGUAGES:
        raise SourceSpecError(
            f"no stop-word list for {language!r}; available: {', '.join(STOPWORD_LANGUAGES)}"
        )
    raw = resources.files(__package__).joinpath(f"stopwords_{language}.txt").read_text(encoding="utf-8")
    return frozenset(w.strip() for w in raw.splitlines() if w.strip() and not w.startswith("#"))


def _is_cjk(word: str) -> bool:
    return all("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" for ch in word)


class StopwordFilter:
    """Removes stop words: Latin-script ones as whole words (any case), CJK ones as substrings,
    longest first (there is no word segmentation)."""

    def __init__(self, words: Iterable[str]) -> None:
        words = {w for w in words if w}
        latin = sorted((w for w in words if not _is_cjk(w)), key=lambda w: (-len(w), w))
        cjk = sorted((w for w in words if _is_cjk(w)), key=lambda w: (-len(w), w))
        self._latin = re.compile(r"\b(?:" + "|".join(map(re.escape, latin)) + r")\b", re.I) if latin else None
        self._cjk = re.compile("|".join(map(re.escape, cjk))) if cjk else None

    @classmethod
    def for_languages(cls, languages: Iterable[str] = STOPWORD_LANGUAGES) -> StopwordFilter:
        """A filter with the packaged lists of ``languages``."""
        words: set[str] = set()
        for language in languages:
            words |= load_stopwords(language)
        return cls(words)

    def __call__(self, text: str) -> str:
        if self._latin is not None:
            text = self._latin.sub(" ", text)
        if self._cjk is not None:
            text = self._cjk.sub("", text)
        return _WHITESPACE.sub(" ", text).strip()


def remove_stopwords(text: str, languages: Iterable[str] = STOPWORD_LANGUAGES) -> str:
    """``text`` without the packaged stop words of ``languages``."""
    return _filter_for(tuple(languages))(text)


@functools.cache
def _filter_for(languages: tuple[str, ...]) -> StopwordFilter:
    return StopwordFilter.for_languages(languages)


# --- de-duplication -------------------------------------------------------------------------------


def text_fingerprint(text: str) -> str:
    """Hex SHA-256 of the text after NFKC, case folding and whitespace collapsing, so copies that
    differ only in width, case or spacing share a fingerprint."""
    canonical = normalize_text(text, form="NFKC").casefold()
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def deduplicate(items: Iterable[T], *, text_of: Callable[[T], str] | None = None) -> Iterator[T]:
    """Yield each item whose text (``text_of(item)``, default the item itself) was not seen yet.

    Streams: memory grows with the number of distinct texts (one digest each), not their size.
    """
    seen: set[bytes] = set()
    for item in items:
        text = text_of(item) if text_of is not None else item
        if not isinstance(text, str):
            raise TypeError(f"deduplicate needs text, got {type(text).__name__}; pass text_of=")
        digest = bytes.fromhex(text_fingerprint(text))[:16]
        if digest not in seen:
            seen.add(digest)
            yield item


# --- splits ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitRatios:
    """Shares of the three splits; they must add up to 1."""

    train: float = 0.8
    validation: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        shares = (self.train, self.validation, self.test)
        if any(s < 0 for s in shares) or abs(sum(shares) - 1.0) > 1e-9:
            raise SourceSpecError(f"split ratios must be non-negative and add up to 1 (got {shares})")


def key_unit(key: Hashable, *, salt: str = "") -> float:
    """Map ``key`` to a number in ``[0, 1)``, the same on every machine and in every run."""
    digest = hashlib.sha256(f"{salt}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_for_key(key: Hashable, ratios: SplitRatios | None = None, *, salt: str = "") -> SplitName:
    """The split of ``key``; ``salt`` gives an independent split of the same keys."""
    r = ratios or SplitRatios()
    u = key_unit(key, salt=salt)
    if u < r.train:
        return "train"
    if u < r.train + r.validation:
        return "validation"
    return "test"


def split_records(
    items: Iterable[T], *, key_of: Callable[[T], Hashable], ratios: SplitRatios | None = None, salt: str = ""
) -> dict[SplitName, list[T]]:
    """Group ``items`` by the split of their key (input order is kept inside each split)."""
    out: dict[SplitName, list[T]] = {name: [] for name in SPLITS}
    for item in items:
        out[split_for_key(key_of(item), ratios, salt=salt)].append(item)
    return out


# --- all together ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreprocessConfig:
    """What :func:`preprocess_texts` does, in this order: normalize, remove stop words, dedup."""

    normalization: NormalForm | None = "NFKC"
    lowercase: bool = False
    stopwords: tuple[str, ...] = field(default=())  # languages, e.g. ("en", "zh"); empty = keep all
    dedup: bool = True
    drop_empty: bool = True


def preprocess_texts(texts: Iterable[str], config: PreprocessConfig | None = None) -> Iterator[str]:
    """Stream ``texts`` through the steps of ``config``."""
    cfg = config or PreprocessConfig()
    stop = StopwordFilter.for_languages(cfg.stopwords) if cfg.stopwords else None

    def cleaned() -> Iterator[str]:
        for text in texts:
            out = normalize_text(text, form=cfg.normalization, lowercase=cfg.lowercase)
            if stop is not None:
                out = stop(out)
            if out or not cfg.drop_empty:
                yield out

    return deduplicate(cleaned()) if cfg.dedup else cleaned()


__all__ = [
    "SPLITS",
    "STOPWORD_LANGUAGES",
    "PreprocessConfig",
    "SplitRatios",
    "StopwordFilter",
    "deduplicate",
    "key_unit",
    "load_stopwords",
    "normalize_text",
    "preprocess_texts",
    "remove_stopwords",
    "split_for_key",
    "split_records",
    "text_fingerprint",
]
