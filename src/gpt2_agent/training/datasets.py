"""The ``[data]`` section turned into train/validation/test examples (or text streams for LMs).

Reading is delegated to :mod:`gpt2_agent.training.data` (connectors, the warehouse's order-audit
data set, preprocessing and the deterministic split by key); this module only maps its records
to :class:`~gpt2_agent.training.encoding.Example` objects and refuses data that cannot train a
model (nothing to learn from, one class only) before any training starts.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpt2_agent.config import Settings
from gpt2_agent.training.config import DataConfig
from gpt2_agent.training.data import (
    LABEL_NAMES,
    DataError,
    PreprocessConfig,
    SplitRatios,
    corpus_texts,
    load_audit_dataset,
    normalize_text,
    open_source,
    preprocess_texts,
    split_audit_dataset,
    split_for_key,
    split_records,
    text_fingerprint,
)
from gpt2_agent.training.encoding import Example, Span, label_list

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "validation", "test")


class DatasetError(DataError, ValueError):
    """The data cannot train the requested model (empty, a single class, malformed records)."""


@dataclass
class DatasetSplits:
    """Examples per split, label names, and the hashes that go into lineage."""

    train: list[Example]
    validation: list[Example]
    test: list[Example]
    labels: list[str] = field(default_factory=list)  # classes, or intents for joint NLU
    entity_types: list[str] = field(default_factory=list)
    fingerprint: str = ""
    eval_hash: str = ""
    source: str = ""


@dataclass
class TextStreams:
    """Language-model data: a way to stream each split's texts (re-iterable, bounded memory)."""

    open: Callable[[str], Iterator[str]]  # split name -> texts
    source: str = ""


def ratios(cfg: DataConfig) -> SplitRatios:
    """The split shares of ``cfg`` (train takes whatever validation and test leave)."""
    train = 1.0 - cfg.val_fraction - cfg.test_fraction
    if train <= 0:
        raise DatasetError(
            f"val_fraction + test_fraction must be below 1 (got {cfg.val_fraction + cfg.test_fraction})"
        )
    return SplitRatios(train=train, validation=cfg.val_fraction, test=cfg.test_fraction)


def examples_hash(examples: Iterable[Example]) -> str:
    """SHA-256 over keys, labels, texts and entities: the identity of a set of examples."""
    digest = hashlib.sha256()
    for ex in examples:
        spans = ";".join(f"{s.entity}:{s.start}:{s.end}" for s in ex.entities)
        digest.update(f"{ex.key}\x1f{ex.label}\x1f{ex.text}\x1f{spans}\x1e".encode())
    return digest.hexdigest()


def load_examples(cfg: DataConfig, task: str, settings: Settings | None = None) -> DatasetSplits:
    """Labelled examples for a classifier, tagger or joint NLU model, split and checked."""
    if cfg.dataset == "order_audit":
        splits = _order_audit(cfg, settings)
    elif cfg.dataset in ("records", "nlu"):
        splits = _from_records(cfg, task)
    else:
        raise DatasetError(f"dataset {cfg.dataset!r} holds no labels; use it with task 'causal_lm'")
    check_trainable(splits, task)
    return splits


def check_trainable(splits: DatasetSplits, task: str) -> None:
    """Refuse data that cannot train ``task``, with a message saying what is wrong."""
    where = f" (from {splits.source})" if splits.source else ""
    if not splits.train:
        raise DatasetError(f"no training examples{where}: the data set or its train split is empty")
    if task in ("sequence_classification", "joint_nlu"):
        seen = sorted({ex.label for ex in splits.train if ex.label is not None})
        if len(seen) < 2:
            raise DatasetError(
                f"the training data has {len(seen)} class(es) {seen}{where}; a classifier needs at least two"
            )
        missing = [ex for ex in splits.train if ex.label is None]
        if missing:
            raise DatasetError(f"{len(missing)} training examples have no label{where}")
    if task in ("token_classification", "joint_nlu") and not splits.entity_types:
        raise DatasetError(f"no entity spans in the training data{where}; a tagger has nothing to learn")


def _order_audit(cfg: DataConfig, settings: Settings | None) -> DatasetSplits:
    url = cfg.warehouse_url or (settings.warehouse_url if settings is not None else "")
    if not url:
        raise DatasetError("order_audit needs data.warehouse_url or settings.warehouse_url")
    records = load_audit_dataset(url, template=cfg.template, limit=cfg.limit)
    groups = split_audit_dataset(records, ratios(cfg), salt=cfg.split_salt)

    def convert(rs: Sequence[Any]) -> list[Example]:
        return [Example(text=_clean(r.text, cfg), label=LABEL_NAMES[r.label], key=r.key) for r in rs]

    out = DatasetSplits(
        train=convert(groups["train"]),
        validation=convert(groups["validation"]),
        test=convert(groups["test"]),
        labels=[LABEL_NAMES[i] for i in sorted(LABEL_NAMES)],
        source=f"order_audit@{_redact(url)}",
    )
    out.fingerprint = examples_hash(out.train + out.validation + out.test)
    out.eval_hash = examples_hash(out.test or out.validation)
    return out


def _from_records(cfg: DataConfig, task: str) -> DatasetSplits:
    if not cfg.source:
        raise DatasetError(
            f"dataset {cfg.dataset!r} needs a [data.source] table (kind = csv|jsonl|parquet|sql)"
        )
    source = open_source(cfg.source, base_dir=Path.cwd())
    examples = list(
        records_to_examples(source, cfg, with_entities=task in ("token_classification", "joint_nlu"))
    )
    if cfg.dedup:
        seen: set[str] = set()
        examples = [ex for ex in examples if not (ex.text in seen or seen.add(ex.text))]  # type: ignore[func-returns-value]
    groups = split_records(
        examples, key_of=lambda ex: ex.key or ex.text, ratios=ratios(cfg), salt=cfg.split_salt
    )
    labels = label_list(groups["train"]) if task != "token_classification" else []
    known = set(labels)
    out = DatasetSplits(
        train=groups["train"],
        # Classes never seen in training cannot be predicted; keep the eval sets honest about it.
        validation=[ex for ex in groups["validation"] if task == "token_classification" or ex.label in known],
        test=[ex for ex in groups["test"] if task == "token_classification" or ex.label in known],
        labels=labels,
        entity_types=sorted({s.entity for ex in groups["train"] for s in ex.entities}),
        source=source.describe() if hasattr(source, "describe") else cfg.dataset,
    )
    out.fingerprint = examples_hash(out.train + out.validation + out.test)
    out.eval_hash = examples_hash(out.test or out.validation)
    return out


def records_to_examples(
    records: Iterable[Mapping[str, Any]], cfg: DataConfig, *, with_entities: bool
) -> Iterator[Example]:
    """Map source records to examples (``text_field``, ``label_field``, optional ``entities``).

    Entities are a list of ``{"entity", "start", "end"}`` (character offsets) or of
    ``{"entity", "value"}``, located at the value's first occurrence in the text.
    """
    for n, rec in enumerate(records, start=1):
        if cfg.text_field not in rec:
            raise DatasetError(f"record {n} has no field {cfg.text_field!r} (fields: {sorted(rec)})")
        if cfg.limit is not None and n > cfg.limit:
            return
        text = str(rec[cfg.text_field] or "")
        if not with_entities:
            text = _clean(text, cfg)
        label = rec.get(cfg.label_field)
        spans = tuple(_spans(rec.get("entities") or (), text, n)) if with_entities else ()
        key = rec.get("id") or rec.get("key")
        yield Example(
            text=text,
            label=None if label is None else str(label),
            entities=spans,
            key=None if key is None else str(key),
        )


def _spans(entities: Iterable[Mapping[str, Any]], text: str, n: int) -> Iterator[Span]:
    for ent in entities:
        kind = ent.get("entity") or ent.get("type")
        if not kind:
            raise DatasetError(f"record {n}: an entity without 'entity' name: {dict(ent)}")
        start, end = ent.get("start"), ent.get("end")
        if start is None or end is None:
            value = str(ent.get("value", ""))
            start = text.find(value) if value else -1
            if start < 0:
                raise DatasetError(f"record {n}: entity value {value!r} is not in the text")
            end = start + len(value)
        if not 0 <= int(start) < int(end) <= len(text):
            raise DatasetError(f"record {n}: entity span [{start}, {end}) is outside the text")
        yield Span(str(kind), int(start), int(end))


def _clean(text: str, cfg: DataConfig) -> str:
    if cfg.normalize is None and not cfg.lowercase:
        return text
    return normalize_text(text, form=cfg.normalize, lowercase=cfg.lowercase)


def lm_texts(cfg: DataConfig, settings: Settings | None = None) -> TextStreams:
    """Streams of texts per split for language-model pretraining (split by text hash)."""
    split_ratios = ratios(cfg)
    prep = PreprocessConfig(normalization=cfg.normalize, lowercase=cfg.lowercase, dedup=cfg.dedup)

    if cfg.dataset in ("warehouse_corpus", "order_audit"):
        url = cfg.warehouse_url or (settings.warehouse_url if settings is not None else "")
        if not url:
            raise DatasetError(f"{cfg.dataset} needs data.warehouse_url or settings.warehouse_url")
        source_name = f"warehouse_corpus@{_redact(url)}"

        def raw() -> Iterator[str]:
            return corpus_texts(url, template=cfg.template)
    elif cfg.dataset in ("records", "nlu"):
        if not cfg.source:
            raise DatasetError(f"dataset {cfg.dataset!r} needs a [data.source] table")
        spec = dict(cfg.source)
        source_name = str(spec.get("path") or spec.get("kind"))

        def raw() -> Iterator[str]:
            for rec in open_source(spec, base_dir=Path.cwd()):
                value = rec.get(cfg.text_field)
                if value:
                    yield str(value)
    else:  # pragma: no cover - the config's Literal keeps this out
        raise DatasetError(f"unknown dataset {cfg.dataset!r}")

    def open_split(split: str) -> Iterator[str]:
        count = 0
        for text in (
            preprocess_texts(raw(), prep) if (prep.normalization or prep.dedup or prep.lowercase) else raw()
        ):
            if not text:
                continue
            if split_for_key(text_fingerprint(text), split_ratios, salt=cfg.split_salt) != split:
                continue
            count += 1
            if cfg.limit is not None and count > cfg.limit:
                return
            yield text

    return TextStreams(open=open_split, source=source_name)


def load_eval_examples(
    data: str | Path | Mapping[str, Any],
    *,
    task: str,
    settings: Settings | None = None,
    text_field: str = "text",
    label_field: str = "label",
    split: str = "test",
) -> list[Example] | list[str]:
    """Examples to evaluate a saved model on (see ``evaluate.evaluate_model``).

    :param data: ``"order_audit"`` (that split of the warehouse's decided orders), a CSV, JSONL
        or Parquet file (by suffix), or a source table such as ``{"kind": "sql", ...}``.
    :param task: the model's task; language models get plain texts.
    """
    cfg_fields: dict[str, Any] = {"text_field": text_field, "label_field": label_field}
    if isinstance(data, str) and data in ("order_audit", "warehouse_corpus"):
        cfg = DataConfig(dataset=data, **cfg_fields)
        if task == "causal_lm":
            return list(lm_texts(cfg, settings).open(split))
        splits = _order_audit(cfg, settings)
        return {"train": splits.train, "validation": splits.validation, "test": splits.test}[split]
    if isinstance(data, Mapping):
        spec = dict(data)
    else:
        path = Path(data)
        kind = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}.get(path.suffix.lower())
        if kind is None:
            raise DatasetError(f"cannot tell the format of {path}: use .csv, .jsonl or .parquet")
        spec = {"kind": kind, "path": str(path)}
    cfg = DataConfig(dataset="records", source=spec, **cfg_fields)
    source = open_source(spec, base_dir=Path.cwd())
    examples = list(
        records_to_examples(source, cfg, with_entities=task in ("token_classification", "joint_nlu"))
    )
    if task == "causal_lm":
        return [ex.text for ex in examples]
    return examples


def _redact(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # only for display
        return "<url>"


__all__ = [
    "DatasetError",
    "DatasetSplits",
    "TextStreams",
    "check_trainable",
    "examples_hash",
    "lm_texts",
    "load_eval_examples",
    "load_examples",
    "ratios",
    "records_to_examples",
]
