"""The NLU training data format: Rasa-style YAML (and JSONL) with inline entity annotations.

YAML, as Rasa users write ``nlu.yml``::

    version: "1"
    nlu:
    - intent: order_audit
      examples: |
        - 审核订单 [66120](order_no)
        - please audit order [12345](order_no)
        - pay [1288.5](amount)[元]{"entity": "currency", "value": "CNY"}
    - lookup: currency
      examples: |
        - 人民币
        - USD
    - regex: order_no
      examples: |
        - \\b\\d{5,8}\\b
    - synonym: CNY
      examples: |
        - 块

An entity is ``[text](entity)``, ``[text](entity:value)`` or ``[text]{"entity": "x", "value": "y"}``;
``value`` overrides the text as the canonical value. JSONL holds one object per line: examples as
``{"text", "intent", "entities": [{"entity", "start", "end", "value"?}]}`` (character offsets),
and ``{"lookup"|"regex"|"synonym": name, "examples": [...]}`` for the rest. Both formats hold the
same information: :func:`load` of what :func:`dump_yaml` or :func:`dump_jsonl` wrote gives back
an equal :class:`TrainingData`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpt2_agent.nlu.errors import TrainingDataError

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
SECTIONS = ("intent", "lookup", "regex", "synonym")
# [text](entity) | [text](entity:value) | [text]{"entity": ..., "value": ...}
_ANNOTATION = re.compile(
    r"\[(?P<text>[^\[\]\n]+)\]"
    r"(?:\((?P<entity>[A-Za-z_][A-Za-z0-9_.-]*)(?::(?P<value>[^()\n]+))?\)|(?P<json>\{[^{}\n]*\}))"
)


@dataclass(frozen=True)
class Entity:
    """``text[start:end]`` is an ``entity``; ``value`` is its canonical value when it differs."""

    entity: str
    start: int
    end: int
    value: str | None = None


@dataclass(frozen=True)
class NluExample:
    """One utterance with its intent and entity spans (character offsets into ``text``)."""

    text: str
    intent: str
    entities: tuple[Entity, ...] = ()

    def annotated(self) -> str:
        """The example in the inline format: ``审核订单 [66120](order_no)``."""
        return to_annotated(self.text, self.entities)

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready record (the JSONL line and the training pipeline's ``nlu`` record)."""
        ents = []
        for e in self.entities:
            item: dict[str, Any] = {"entity": e.entity, "start": e.start, "end": e.end}
            if e.value is not None:
                item["value"] = e.value
            ents.append(item)
        return {"text": self.text, "intent": self.intent, "entities": ents}


@dataclass
class TrainingData:
    """Examples plus the lookup tables, regex patterns and synonyms of a data file."""

    examples: list[NluExample] = field(default_factory=list)
    lookups: dict[str, list[str]] = field(default_factory=dict)
    regexes: dict[str, list[str]] = field(default_factory=dict)
    synonyms: dict[str, list[str]] = field(default_factory=dict)  # canonical value -> surface forms

    @property
    def intents(self) -> list[str]:
        """Intent names, sorted."""
        return sorted({ex.intent for ex in self.examples})

    @property
    def entity_types(self) -> list[str]:
        """Entity names used in examples, sorted."""
        return sorted({e.entity for ex in self.examples for e in ex.entities})

    def merge(self, other: TrainingData) -> TrainingData:
        """A new data set with the examples of both and the union of their tables."""
        out = TrainingData(
            examples=[*self.examples, *other.examples],
            lookups={k: list(v) for k, v in self.lookups.items()},
            regexes={k: list(v) for k, v in self.regexes.items()},
            synonyms={k: list(v) for k, v in self.synonyms.items()},
        )
        for target, source in (
            (out.lookups, other.lookups),
            (out.regexes, other.regexes),
            (out.synonyms, other.synonyms),
        ):
            for key, values in source.items():
                bucket = target.setdefault(key, [])
                bucket.extend(v for v in values if v not in bucket)
        return out

    def patterns(self) -> dict[str, Any]:
        """Lookups, regexes and synonyms as one JSON-ready object (stored next to a model)."""
        return {"lookups": self.lookups, "regexes": self.regexes, "synonyms": self.synonyms}


# --- the inline annotation ----------------------------------------------------------------------


def parse_annotated(line: str, *, where: str = "") -> tuple[str, tuple[Entity, ...]]:
    """``"审核订单 [66120](order_no)"`` → ``("审核订单 66120", (Entity("order_no", 5, 10),))``."""
    text_parts: list[str] = []
    entities: list[Entity] = []
    pos = 0
    length = 0
    for match in _ANNOTATION.finditer(line):
        before = line[pos : match.start()]
        text_parts.append(before)
        length += len(before)
        span_text = match.group("text")
        entity, value = match.group("entity"), match.group("value")
        if match.group("json") is not None:
            entity, value = _json_annotation(match.group("json"), where)
        if not entity or not NAME.match(entity):
            raise TrainingDataError(f"{where}invalid entity name {entity!r} in {line!r}")
        entities.append(Entity(entity, length, length + len(span_text), value))
        text_parts.append(span_text)
        length += len(span_text)
        pos = match.end()
    text_parts.append(line[pos:])
    return "".join(text_parts), tuple(entities)


def _json_annotation(raw: str, where: str) -> tuple[str, str | None]:
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TrainingDataError(f"{where}entity annotation {raw} is not valid JSON: {exc.msg}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("entity"), str):
        raise TrainingDataError(f'{where}entity annotation {raw} needs "entity": "<name>"')
    unknown = set(spec) - {"entity", "value"}
    if unknown:
        raise TrainingDataError(f"{where}entity annotation {raw}: unknown keys {sorted(unknown)}")
    value = spec.get("value")
    return spec["entity"], None if value is None else str(value)


def to_annotated(text: str, entities: Iterable[Entity]) -> str:
    """Inverse of :func:`parse_annotated`."""
    out = []
    pos = 0
    for e in sorted(entities, key=lambda e: e.start):
        out.append(text[pos : e.start])
        span = text[e.start : e.end]
        if e.value is None:
            out.append(f"[{span}]({e.entity})")
        else:
            out.append(
                "[" + span + "]" + json.dumps({"entity": e.entity, "value": e.value}, ensure_ascii=False)
            )
        pos = e.end
    out.append(text[pos:])
    return "".join(out)


def check_example(ex: NluExample, where: str = "") -> NluExample:
    """Raise :class:`TrainingDataError` for empty text, bad names, or spans that are out of range,
    empty, overlapping, or cannot be written back unambiguously."""
    if not ex.text.strip():
        raise TrainingDataError(f"{where}empty example text")
    if not NAME.match(ex.intent):
        raise TrainingDataError(f"{where}invalid intent name {ex.intent!r}")
    last_end = 0
    for e in sorted(ex.entities, key=lambda e: e.start):
        if not NAME.match(e.entity):
            raise TrainingDataError(f"{where}invalid entity name {e.entity!r}")
        if not 0 <= e.start < e.end <= len(ex.text):
            raise TrainingDataError(
                f"{where}entity {e.entity} span [{e.start}, {e.end}) is outside the text {ex.text!r}"
            )
        if e.start < last_end:
            raise TrainingDataError(f"{where}overlapping entity spans in {ex.text!r}")
        if any(ch in "[]\n" for ch in ex.text[e.start : e.end]):
            raise TrainingDataError(f"{where}entity text may not contain '[', ']' or a newline: {ex.text!r}")
        last_end = e.end
    return ex


# --- YAML ---------------------------------------------------------------------------------------


def load_yaml(path: str | Path) -> TrainingData:
    """Read a Rasa-style YAML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrainingDataError(f"training data file not found: {p}") from None
    return parse_yaml(text, name=str(p))


def parse_yaml(text: str, *, name: str = "<yaml>") -> TrainingData:
    """Read Rasa-style YAML from a string (``name`` is used in error messages)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TrainingDataError(f"{name}: invalid YAML: {exc}") from None
    if doc is None:
        return TrainingData()
    if not isinstance(doc, dict):
        raise TrainingDataError(f"{name}: expected a mapping with an 'nlu' list at the top")
    unknown = set(doc) - {"version", "nlu"}
    if unknown:
        raise TrainingDataError(f"{name}: unknown top-level keys {sorted(unknown)} (expected version, nlu)")
    items = doc.get("nlu") or []
    if not isinstance(items, list):
        raise TrainingDataError(f"{name}: 'nlu' must be a list")
    data = TrainingData()
    for index, item in enumerate(items):
        _add_item(data, item, f"{name}: nlu[{index}]")
    return data


def _example_lines(raw: Any, where: str) -> list[str]:
    if isinstance(raw, list):
        return [str(x) for x in raw]
    if not isinstance(raw, str):
        raise TrainingDataError(f"{where}: 'examples' must be a block of '- ' lines or a list")
    lines = []
    for number, line in enumerate(raw.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not stripped.startswith("- "):
            raise TrainingDataError(f"{where}: examples line {number} must start with '- ': {stripped!r}")
        lines.append(stripped[2:])
    return lines


def _add_item(data: TrainingData, item: Any, where: str) -> None:
    if not isinstance(item, dict):
        raise TrainingDataError(f"{where}: expected a mapping")
    kinds = [k for k in SECTIONS if k in item]
    if len(kinds) != 1:
        raise TrainingDataError(f"{where}: needs exactly one of {', '.join(SECTIONS)}")
    kind = kinds[0]
    unknown = set(item) - {kind, "examples"}
    if unknown:
        raise TrainingDataError(f"{where}: unknown keys {sorted(unknown)}")
    label = str(item[kind])
    if kind != "synonym" and not NAME.match(label):
        raise TrainingDataError(f"{where}: invalid {kind} name {label!r}")
    lines = _example_lines(item.get("examples", ""), f"{where} ({kind} {label})")
    if not lines:
        raise TrainingDataError(f"{where}: {kind} {label} has no examples")
    if kind == "intent":
        for n, line in enumerate(lines, start=1):
            here = f"{where} ({kind} {label}) example {n}: "
            text, ents = parse_annotated(line, where=here)
            data.examples.append(check_example(NluExample(text, label, ents), here))
    elif kind == "regex":
        for pattern in lines:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise TrainingDataError(
                    f"{where} (regex {label}): invalid pattern {pattern!r}: {exc}"
                ) from None
        data.regexes.setdefault(label, []).extend(lines)
    elif kind == "lookup":
        data.lookups.setdefault(label, []).extend(lines)
    else:
        data.synonyms.setdefault(label, []).extend(lines)


class _Block(str):
    """A string YAML writes in literal block style (``|``)."""


def _block_representer(dumper: yaml.SafeDumper, value: _Block) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Block, _block_representer)


def _lines_block(lines: Iterable[str]) -> _Block:
    return _Block("".join(f"- {line}\n" for line in lines))


def dump_yaml(data: TrainingData, path: str | Path | None = None) -> str:
    """The data as Rasa-style YAML (written to ``path`` if given); intents keep their first-seen order."""
    items: list[dict[str, Any]] = []
    by_intent: dict[str, list[str]] = {}
    for ex in data.examples:
        line = ex.annotated()
        if line != line.strip() or "\n" in line:
            raise TrainingDataError(f"cannot write example {ex.text!r} as a YAML line (edge spaces/newline)")
        by_intent.setdefault(ex.intent, []).append(line)
    items += [{"intent": k, "examples": _lines_block(v)} for k, v in by_intent.items()]
    items += [{"lookup": k, "examples": _lines_block(v)} for k, v in data.lookups.items()]
    items += [{"regex": k, "examples": _lines_block(v)} for k, v in data.regexes.items()]
    items += [{"synonym": k, "examples": _lines_block(v)} for k, v in data.synonyms.items()]
    text = yaml.dump(
        {"version": "1", "nlu": items}, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000
    )
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


# --- JSONL --------------------------------------------------------------------------------------


def load_jsonl(path: str | Path) -> TrainingData:
    """Read a JSONL file."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TrainingDataError(f"training data file not found: {p}") from None
    return parse_jsonl(lines, name=str(p))


def parse_jsonl(lines: Iterable[str], *, name: str = "<jsonl>") -> TrainingData:
    """Read JSONL from an iterable of lines."""
    data = TrainingData()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}: "
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainingDataError(f"{where}invalid JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise TrainingDataError(f"{where}expected a JSON object")
        _add_record(data, record, where)
    return data


def _add_record(data: TrainingData, record: Mapping[str, Any], where: str) -> None:
    for kind, target in (("lookup", data.lookups), ("regex", data.regexes), ("synonym", data.synonyms)):
        if kind in record:
            values = record.get("examples")
            if not isinstance(values, list):
                raise TrainingDataError(f"{where}{kind} needs an 'examples' list")
            target.setdefault(str(record[kind]), []).extend(str(v) for v in values)
            return
    unknown = set(record) - {"text", "intent", "entities"}
    if unknown:
        raise TrainingDataError(f"{where}unknown keys {sorted(unknown)}")
    if not isinstance(record.get("text"), str) or not isinstance(record.get("intent"), str):
        raise TrainingDataError(f"{where}an example needs string 'text' and 'intent'")
    ents = []
    for raw in record.get("entities") or []:
        try:
            value = raw.get("value")
            ents.append(
                Entity(
                    str(raw["entity"]),
                    int(raw["start"]),
                    int(raw["end"]),
                    None if value is None else str(value),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise TrainingDataError(f"{where}an entity needs 'entity', 'start' and 'end': {raw!r}") from None
    ex = NluExample(record["text"], record["intent"], tuple(sorted(ents, key=lambda e: e.start)))
    data.examples.append(check_example(ex, where))


def iter_jsonl(data: TrainingData) -> Iterator[str]:
    """The JSONL lines of ``data`` (examples first, then lookups, regexes, synonyms)."""
    for ex in data.examples:
        yield json.dumps(ex.to_record(), ensure_ascii=False)
    for kind, table in (("lookup", data.lookups), ("regex", data.regexes), ("synonym", data.synonyms)):
        for key, values in table.items():
            yield json.dumps({kind: key, "examples": values}, ensure_ascii=False)


def dump_jsonl(data: TrainingData, path: str | Path | None = None) -> str:
    """The data as JSONL text (written to ``path`` if given)."""
    text = "".join(line + "\n" for line in iter_jsonl(data))
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def load(path: str | Path) -> TrainingData:
    """Read a ``.yml``/``.yaml`` or ``.jsonl``/``.json`` training data file."""
    p = Path(path)
    if p.suffix.lower() in (".yml", ".yaml"):
        return load_yaml(p)
    if p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return load_jsonl(p)
    raise TrainingDataError(f"{p}: unknown training data format (expected .yml, .yaml or .jsonl)")


def load_many(paths: Iterable[str | Path]) -> TrainingData:
    """Merge several training data files."""
    data = TrainingData()
    for path in paths:
        data = data.merge(load(path))
    return data


__all__ = [
    "Entity",
    "NluExample",
    "TrainingData",
    "check_example",
    "dump_jsonl",
    "dump_yaml",
    "iter_jsonl",
    "load",
    "load_jsonl",
    "load_many",
    "load_yaml",
    "parse_annotated",
    "parse_jsonl",
    "parse_yaml",
    "to_annotated",
]
