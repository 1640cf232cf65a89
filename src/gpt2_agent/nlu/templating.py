"""A tiny template language for generating utterances.

``(a|b|c)`` picks one alternative, ``[x]`` or ``[a|b]`` is optional (taken half of the time),
``<name>`` inserts a phrase defined elsewhere (itself a template), ``{slot}`` is an entity
placeholder filled by the generator, and ``\\`` escapes the next character. Example::

    <please>(audit|review) [order ]{order_no}[ please]
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Union

from gpt2_agent.nlu.errors import TrainingDataError


@dataclass(frozen=True)
class Text:
    value: str


@dataclass(frozen=True)
class Slot:
    name: str


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Seq:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Alt:
    options: tuple[Seq, ...]


@dataclass(frozen=True)
class Opt:
    body: Alt


Node = Union[Text, Slot, Ref, Seq, Alt, Opt]  # noqa: UP007 - a runtime alias of forward references
Part = Union[str, Slot]  # noqa: UP007


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.pos = 0

    def error(self, message: str) -> TrainingDataError:
        return TrainingDataError(f"template {self.source!r}, column {self.pos + 1}: {message}")

    def parse(self) -> Seq:
        seq = self.seq(stop="")
        if self.pos != len(self.source):
            raise self.error(f"unexpected {self.source[self.pos]!r}")
        return seq

    def seq(self, stop: str) -> Seq:
        items: list[Node] = []
        buf: list[str] = []

        def flush() -> None:
            if buf:
                items.append(Text("".join(buf)))
                buf.clear()

        while self.pos < len(self.source):
            ch = self.source[self.pos]
            if ch in stop or ch == "|":
                break
            if ch == "\\":
                if self.pos + 1 >= len(self.source):
                    raise self.error("dangling escape")
                buf.append(self.source[self.pos + 1])
                self.pos += 2
            elif ch in "([":
                flush()
                self.pos += 1
                alt = self.alternatives(")" if ch == "(" else "]")
                items.append(alt if ch == "(" else Opt(alt))
            elif ch in "{<":
                flush()
                close = "}" if ch == "{" else ">"
                end = self.source.find(close, self.pos)
                if end < 0:
                    raise self.error(f"missing {close!r}")
                name = self.source[self.pos + 1 : end].strip()
                if not name:
                    raise self.error("empty name")
                items.append(Slot(name) if ch == "{" else Ref(name))
                self.pos = end + 1
            elif ch in ")]":
                raise self.error(f"unbalanced {ch!r}")
            else:
                buf.append(ch)
                self.pos += 1
        flush()
        return Seq(tuple(items))

    def alternatives(self, close: str) -> Alt:
        options = [self.seq(stop=close)]
        while self.pos < len(self.source) and self.source[self.pos] == "|":
            self.pos += 1
            options.append(self.seq(stop=close))
        if self.pos >= len(self.source) or self.source[self.pos] != close:
            raise self.error(f"missing {close!r}")
        self.pos += 1
        return Alt(tuple(options))


def parse_template(source: str) -> Seq:
    """Parse a template; raises :class:`TrainingDataError` naming the column of a syntax error."""
    return _Parser(source).parse()


class TemplateSet:
    """Parsed phrases, ready to render templates that refer to them."""

    def __init__(self, phrases: dict[str, list[str]]) -> None:
        self.phrases = {name: [parse_template(p) for p in options] for name, options in phrases.items()}

    def render(
        self, node: Node, rng: random.Random, out: list[Part] | None = None, depth: int = 0
    ) -> list[Part]:
        """Render ``node`` to text pieces and slots."""
        if depth > 20:
            raise TrainingDataError("template phrases refer to each other in a cycle")
        parts: list[Part] = [] if out is None else out
        if isinstance(node, Text):
            parts.append(node.value)
        elif isinstance(node, Slot):
            parts.append(node)
        elif isinstance(node, Seq):
            for item in node.items:
                self.render(item, rng, parts, depth)
        elif isinstance(node, Alt):
            self.render(rng.choice(node.options), rng, parts, depth)
        elif isinstance(node, Opt):
            if rng.random() < 0.5:
                self.render(node.body, rng, parts, depth)
        else:
            options = self.phrases.get(node.name)
            if not options:
                raise TrainingDataError(f"template refers to unknown phrase <{node.name}>")
            self.render(rng.choice(options), rng, parts, depth + 1)
        return parts


__all__ = ["Alt", "Opt", "Part", "Ref", "Seq", "Slot", "TemplateSet", "Text", "parse_template"]
