"""``NluService``: parse texts with the registry's production NLU model, reloading when it changes.

The API's ``POST /api/v1/nlu/parse`` calls :meth:`NluService.parse`; the dialogue calls it too.
Concurrent callers share one model through a micro-batcher (one forward pass per batch). The
service polls ``registry.generation(model)`` at most every ``settings.nlu_reload_interval_seconds``
and swaps in a newly promoted version whole; requests in flight finish on the version they
started with, and the version that computed a parse is named in its ``model`` field.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from gpt2_agent.config import Settings
from gpt2_agent.nlu.errors import InvalidText, NluModelNotReady, TextTooLong
from gpt2_agent.nlu.extractors import EntityExtractor, Patterns
from gpt2_agent.nlu.parser import NluParser
from gpt2_agent.nlu.predictor import JointPredictor, MicroBatcher
from gpt2_agent.nlu.text import normalize
from gpt2_agent.store import Database

logger = logging.getLogger(__name__)

TRAIN_HINT = "gpt2-agent train configs/nlu.toml"


class ModelSource(Protocol):
    """What the service needs of :class:`gpt2_agent.registry.Registry`."""

    def generation(self, name: str) -> int: ...

    def alias_version(self, name: str, alias: str) -> int | None: ...

    def get_version(self, name: str, version: int) -> Any: ...


def check_text(text: object, limit: int, *, field: str = "text") -> str:
    """``text`` if it is a non-blank string of at most ``limit`` characters, else raise.

    :raises InvalidText: not a string, empty, or only whitespace/control characters.
    :raises TextTooLong: longer than ``limit``.
    """
    if not isinstance(text, str):
        raise InvalidText(f"{field} must be a string", field=field)
    if len(text) > limit:
        raise TextTooLong(len(text), limit, field=field)
    if not normalize(text).strip():
        raise InvalidText(f"{field} must not be empty", field=field)
    return text


@dataclass(frozen=True)
class _Loaded:
    version: int
    parser: NluParser
    batcher: MicroBatcher


class NluService:
    """Parse texts with the served NLU model. Thread-safe; create one per process.

    :param settings: ``nlu_model``, ``nlu_alias``, ``nlu_min_confidence``, ``nlu_max_text_chars``,
        ``nlu_reload_interval_seconds``, ``nlu_max_batch``.
    :param db: unused beyond the registry today; kept so the API wires every service alike.
    :param registry: the model registry (anything with ``generation``/``alias_version``/``get_version``).
    """

    def __init__(self, settings: Settings, db: Database | None, registry: ModelSource) -> None:
        self.settings = settings
        self.db = db
        self.registry = registry
        self.name = settings.nlu_model
        self.alias = settings.nlu_alias
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._generation = -1
        self._checked_at = float("-inf")
        self._closed = False

    # --- parsing -----------------------------------------------------------------------------

    def parse(self, text: str, *, expected: str | None = None) -> dict[str, Any]:
        """The Rasa-shaped parse of ``text`` (see :class:`~gpt2_agent.nlu.parser.NluParser`).

        ``expected`` names the slot a dialogue is waiting for (a bare ``4500`` then is an amount).
        :raises InvalidText: empty text. :raises TextTooLong: over ``settings.nlu_max_text_chars``.
        :raises NluModelNotReady: no version under the served alias.
        """
        check_text(text, self.settings.nlu_max_text_chars)
        loaded = self._current()
        result = loaded.parser.parse(text, expected=expected)
        result["model"] = {"name": self.name, "version": loaded.version}
        return result

    def warm(self) -> bool:
        """Load the served version now (at server start) so the first request does not wait;
        False when there is none yet (requests then raise :class:`NluModelNotReady`)."""
        try:
            self._current()
        except NluModelNotReady:
            return False
        return True

    def status(self) -> dict[str, Any]:
        """The served model and version (``version`` is None before the first load)."""
        loaded = self._loaded
        return {"model": self.name, "alias": self.alias, "version": loaded.version if loaded else None}

    # --- loading and hot reload ---------------------------------------------------------------

    def _current(self) -> _Loaded:
        if self._closed:
            raise RuntimeError("the NLU service is closed")
        loaded = self._loaded
        fresh = time.monotonic() - self._checked_at < self.settings.nlu_reload_interval_seconds
        if loaded is not None and fresh:
            return loaded
        # One thread checks and loads; the others keep using the loaded version meanwhile.
        if not self._lock.acquire(blocking=loaded is None):
            assert loaded is not None
            return loaded
        try:
            return self._refresh()
        finally:
            self._lock.release()

    def _refresh(self) -> _Loaded:
        generation = self.registry.generation(self.name)
        loaded = self._loaded
        if loaded is None or generation != self._generation:
            version = self.registry.alias_version(self.name, self.alias)
            if version is None:
                raise NluModelNotReady(self.name, TRAIN_HINT, alias=self.alias)
            if loaded is None or loaded.version != version:
                info = self.registry.get_version(self.name, version)
                new = self._load(version, info.path)
                self._loaded = new
                if loaded is not None:
                    # Callers holding the old version still get answers (closed batchers run inline).
                    loaded.batcher.close()
                logger.info("serving %s:%s (%s)", self.name, version, self.alias)
            self._generation = generation
        self._checked_at = time.monotonic()
        assert self._loaded is not None
        return self._loaded

    def _load(self, version: int, path: Any) -> _Loaded:
        predictor = JointPredictor(path)
        batcher = MicroBatcher(
            predictor.predict, max_batch=self.settings.nlu_max_batch, name=f"nlu-{version}"
        )

        def predict(texts: list[str]) -> list[Any]:
            # One text per call goes through the batcher, so concurrent callers share passes.
            if len(texts) == 1:
                return [batcher(texts[0])]
            return predictor.predict(texts)

        threshold = self.settings.nlu_min_confidence
        if threshold is None:
            threshold = float(predictor.settings.get("min_confidence", 0.5))
        extractor = EntityExtractor(Patterns.from_dict(predictor.patterns))
        parser = NluParser(predict, extractor, min_confidence=threshold)
        return _Loaded(version, parser, batcher)

    def close(self) -> None:
        """Stop the batching thread."""
        self._closed = True
        with self._lock:
            if self._loaded is not None:
                self._loaded.batcher.close()


__all__ = ["TRAIN_HINT", "NluService", "check_text"]
