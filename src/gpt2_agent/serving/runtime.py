"""The serving runtime: the production version of each model, micro-batched, hot-reloaded.

Example::

    runtime = ServingRuntime(settings, registry, max_batch_size=32, max_wait_ms=5.0)
    [p] = runtime.predict("order-audit", ["479.46 CNY | web | ..."])
    p.label, p.probability, p.version  # "approve", 0.93, 4
    runtime.close()

Models are loaded lazily, on first use, from the registry alias (``production``). A watcher
thread polls ``registry.generation(name)`` every ``reload_interval_s``; when the alias has moved
it loads the new version completely (weights, tokenizer, precision checks, a warm-up pass) in the
background and then swaps one reference. Rounds already started finish on the old version; the
next round uses the new one. No request fails and none mixes versions (see ``batcher``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import torch

from gpt2_agent.config import Settings
from gpt2_agent.registry import PRODUCTION, Registry
from gpt2_agent.registry.refs import check_model_name
from gpt2_agent.serving.batcher import MicroBatcher
from gpt2_agent.serving.errors import ModelNotReady, ServingClosed, ServingError, UnsupportedTask
from gpt2_agent.serving.loader import SEQUENCE_CLASSIFICATION, ServedModel, load_served_model
from gpt2_agent.serving.precision import CheckSample, PrecisionPolicy, choose_precision, stored_sample
from gpt2_agent.serving.prediction import Prediction

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TRAIN_HINT = "gpt2-agent train <config>, then gpt2-agent models promote {name} <version>"
_WARMUP_TOKENS = 16


class _Slot:
    """Everything the runtime holds for one model name."""

    def __init__(self, name: str) -> None:
        self.name = name
        # The version serving requests; replaced as a whole on reload, never mutated.
        self.served: ServedModel | None = None
        self.generation = -1  # the registry generation last looked at
        self.failed_version: int | None = None  # a version whose load failed; not retried until it changes
        self.lock = threading.Lock()  # one load or check of this model at a time
        self.batcher: MicroBatcher | None = None


class ServingRuntime:
    """Serve registered models to many threads at once. Share one per process.

    :param settings: ``serving_threads`` (CPUs to use; 0 = every CPU this process may run on),
        ``serving_workers`` and ``serving_quantize_tolerance`` (defaults of ``workers`` and
        ``quantize_tolerance``).
    :param registry: where versions and aliases come from.
    :param max_batch_size: most texts in one forward pass.
    :param max_wait_ms: longest a request waits for others to share its forward pass.
    :param reload_interval_s: how often aliases are polled for hot reload (0 disables polling).
    :param quantize: serve int8 where a labelled check sample shows the accuracy drop is at most
        ``quantize_tolerance``; refused (and logged) otherwise.
    :param dtype: ``"auto"`` (bf16 autocast where it agrees with fp32 and is faster), ``"fp32"`` or
        ``"bf16"``.
    :param check_samples: per model, held-out texts (and labels) to check cheaper precisions with;
        a version's own ``eval_sample.json`` is used for models not listed.
    :param train_hints: per model, the command that trains it, quoted by :class:`ModelNotReady`.
    :param alias: the alias served (``production``).
    :param workers: forward passes computed at the same time per model. One pass using every CPU
        is the default; one single-threaded pass per CPU keeps its throughput when other
        processes compete for the CPUs (see ``batcher``).
    :param threads: torch threads per forward pass (default: CPUs / workers). This sets torch's
        process-wide thread count, which other torch work in the process then shares.
    """

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        reload_interval_s: float = 2.0,
        quantize: bool = False,
        dtype: str = "auto",
        quantize_tolerance: float | None = None,
        min_agreement: float = 0.99,
        check_samples: Mapping[str, CheckSample] | None = None,
        train_hints: Mapping[str, str] | None = None,
        alias: str = PRODUCTION,
        workers: int | None = None,
        threads: int | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1 (got {max_batch_size})")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0 (got {max_wait_ms})")
        self.settings = settings
        self.registry = registry
        self.alias = alias
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.reload_interval_s = reload_interval_s
        tolerance = quantize_tolerance
        if tolerance is None:
            tolerance = settings.serving_quantize_tolerance
        self.policy = PrecisionPolicy(
            dtype=dtype,
            quantize=quantize,
            tolerance=tolerance,
            min_agreement=min_agreement,
            batch_size=max_batch_size,
        )
        self._check_samples: dict[str, CheckSample] = dict(check_samples or {})
        self._train_hints = dict(train_hints or {})
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        cpus = settings.serving_threads or _usable_cpus()
        self.workers = workers or settings.serving_workers
        self.threads = threads or max(1, cpus // self.workers)
        if self.workers < 1 or self.threads < 1:
            raise ValueError(f"workers and threads must be at least 1 (got {self.workers}, {self.threads})")
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    # ------------------------------------------------------------------ requests

    def predict(self, model: str, texts: Sequence[str], *, timeout: float | None = None) -> list[Prediction]:
        """Classify ``texts`` with the served version of ``model``; blocks until done. Thread-safe.

        Texts of concurrent calls share forward passes; all predictions of one call come from one
        version. Raises :class:`ModelNotReady` if the model has no version under the alias yet,
        :class:`UnsupportedTask` for models that are not sequence classifiers, and
        ``TimeoutError`` if ``timeout`` seconds pass first.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a list of strings")
        texts = list(texts)
        if not texts:
            return []
        slot = self._slot(model)
        served = self._ensure_loaded(slot)
        if served.task != SEQUENCE_CLASSIFICATION:
            raise UnsupportedTask(
                f"{served.ref} is a {served.task} model; predict() serves sequence classifiers, use run()"
            )
        assert slot.batcher is not None
        future = slot.batcher.submit(texts, served.encode(texts), served)
        _, results = future.result(timeout)
        return results

    def predict_one(self, model: str, text: str, *, timeout: float | None = None) -> Prediction:
        """:meth:`predict` for one text."""
        return self.predict(model, [text], timeout=timeout)[0]

    def run(self, model: str, fn: Callable[[ServedModel], T]) -> T:
        """Call ``fn(served)`` with the served version, in this thread, without batching.

        ``fn`` runs under ``torch.inference_mode`` and the version's autocast; use it for heads
        ``predict`` does not serve (tagging, joint NLU) or for custom batched work. It must not
        modify the model.
        """
        served = self._ensure_loaded(self._slot(model))
        with torch.inference_mode(), served.autocast():
            return fn(served)

    # ------------------------------------------------------------------ versions

    def loaded_version(self, model: str) -> int | None:
        """The version serving ``model`` now, or None if it is not loaded (nothing is loaded here)."""
        slot = self._slots.get(model)
        served = slot.served if slot is not None else None
        return served.version if served is not None else None

    def served(self, model: str) -> ServedModel:
        """The loaded version of ``model`` (loading it if needed)."""
        return self._ensure_loaded(self._slot(model))

    def reload(self, model: str) -> int | None:
        """Look up the alias now and load its version if it differs; returns the version served.

        Returns None if the model has no version under the alias; load errors are raised.
        """
        slot = self._slot(model)
        with slot.lock:
            self._refresh(slot, force=True, raise_errors=True)
        return self.loaded_version(model)

    def set_check_sample(self, model: str, texts: Sequence[str], labels: Sequence[str] | None = None) -> None:
        """Use ``texts`` (and ``labels``) to check precisions of versions of ``model`` loaded from now on."""
        self._check_samples[model] = CheckSample.of(texts, labels)

    def info(self, model: str) -> dict[str, Any]:
        """What is served for ``model``: version, precision and why, and batching counters."""
        slot = self._slots.get(model)
        served = slot.served if slot is not None else None
        if slot is None or served is None:
            return {"model": model, "version": None}
        return {
            "model": model,
            "version": served.version,
            "task": served.task,
            "labels": list(served.labels),
            "precision": served.precision,
            "precision_info": dict(served.info),
            "workers": self.workers,
            "threads": self.threads,
            "batching": slot.batcher.stats.snapshot() if slot.batcher else {},
        }

    def close(self) -> None:
        """Finish queued requests, stop the threads; later calls raise :class:`ServingClosed`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            slots = list(self._slots.values())
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        for slot in slots:
            if slot.batcher is not None:
                slot.batcher.close()

    def __enter__(self) -> ServingRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ loading

    def _slot(self, model: str) -> _Slot:
        slot = self._slots.get(model)
        if slot is not None and not self._closed:
            return slot
        with self._lock:
            if self._closed:
                raise ServingClosed("the serving runtime is closed")
            slot = self._slots.get(model)
            if slot is None:
                slot = self._slots[check_model_name(model)] = _Slot(model)
                if self._watcher is None and self.reload_interval_s > 0:
                    self._watcher = threading.Thread(target=self._watch, name="serving-reload", daemon=True)
                    self._watcher.start()
            return slot

    def _ensure_loaded(self, slot: _Slot) -> ServedModel:
        served = slot.served
        if served is not None:
            return served
        with slot.lock:
            if slot.served is None:
                self._refresh(slot, force=True, raise_errors=True)
            if slot.served is None:
                hint = self._train_hints.get(slot.name) or DEFAULT_TRAIN_HINT.format(name=slot.name)
                raise ModelNotReady(slot.name, hint, alias=self.alias)
            return slot.served

    def _refresh(self, slot: _Slot, *, force: bool, raise_errors: bool) -> None:
        """Load the alias's version into ``slot`` if it changed. Caller holds ``slot.lock``."""
        generation = self.registry.generation(slot.name)
        if generation == slot.generation and not force:
            return
        version = self.registry.alias_version(slot.name, self.alias)
        current = slot.served
        if version is None:
            if current is not None and generation != slot.generation:
                logger.warning(
                    "%s has no %s alias any more; still serving version %s",
                    slot.name,
                    self.alias,
                    current.version,
                )
        elif current is None or current.version != version:
            if version == slot.failed_version and not force:
                slot.generation = generation
                return
            try:
                fresh = self._load(slot.name, version)
            except Exception as exc:
                slot.failed_version = version
                slot.generation = generation
                if raise_errors:
                    raise ServingError(f"cannot load {slot.name}:{version}: {exc}") from exc
                logger.exception("cannot load %s:%s; still serving %s", slot.name, version, _ref(current))
                return
            slot.served = fresh  # the swap: the next round reads this reference
            slot.failed_version = None
            if slot.batcher is None:
                slot.batcher = self._new_batcher(slot)
            logger.info("serving %s (was %s) in %s", fresh.ref, _ref(current), fresh.precision)
        slot.generation = generation

    def _load(self, name: str, version: int) -> ServedModel:
        info = self.registry.verify(name, version)  # serve exactly the files that were registered
        base = load_served_model(name, version, info.path)
        sample = self._check_samples.get(name) or stored_sample(base)
        served = choose_precision(base, self.policy, sample)
        if served.task == SEQUENCE_CLASSIFICATION:
            served.logits([[served.encode.eos_id] * _WARMUP_TOKENS])  # first-call kernel setup, off the clock
        return served

    def _new_batcher(self, slot: _Slot) -> MicroBatcher:
        def current() -> ServedModel:
            served = slot.served
            assert served is not None
            return served

        return MicroBatcher(
            slot.name,
            current,
            _classify,
            max_batch_size=self.max_batch_size,
            max_wait_s=self.max_wait_s,
            workers=self.workers,
        )

    def _watch(self) -> None:
        while not self._stop.wait(self.reload_interval_s):
            for slot in list(self._slots.values()):
                if self._stop.is_set():
                    return
                try:
                    with slot.lock:
                        self._refresh(slot, force=False, raise_errors=False)
                except Exception:  # the database may be briefly away; try again next round
                    logger.warning("hot-reload check of %s failed", slot.name, exc_info=True)


def _classify(served: ServedModel, rows: Sequence[Sequence[int]]) -> list[Prediction]:
    """One forward pass of a sequence classifier → one :class:`Prediction` per row."""
    probabilities = served.probabilities(rows).tolist()
    labels = served.labels
    out = []
    for row in probabilities:
        best = max(range(len(row)), key=row.__getitem__)
        out.append(
            Prediction(
                label=labels[best],
                probability=row[best],
                scores=dict(zip(labels, row, strict=True)),
                version=served.version,
                model=served.name,
            )
        )
    return out


def _ref(served: ServedModel | None) -> str:
    return served.ref if served is not None else "nothing"


def _usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


__all__ = ["DEFAULT_TRAIN_HINT", "ServingRuntime"]
