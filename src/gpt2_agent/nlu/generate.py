"""Demo training data from templates: varied phrasing, typos, full-width digits, odd amounts.

``generate_demo_data(seed)`` renders ``data/templates.yml`` (see :mod:`gpt2_agent.nlu.templating`),
fills entity slots with random but realistic values (order numbers, amounts such as ``4,500``,
``1288.5`` or ``三千五``, e-mail addresses, file names, task ids) and perturbs the result the way
people type: dropped or swapped letters, full-width digits, capitalisation, missing spaces. The
hand-written examples, lookup tables and synonyms of ``data/nlu.yml`` are added. The output is
deterministic for a seed.

The evaluation set ``data/eval.yml`` is written by hand and never produced here.

Run ``python -m gpt2_agent.nlu.generate --out demo.yml`` to look at what it makes.
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gpt2_agent.nlu.errors import TrainingDataError
from gpt2_agent.nlu.format import (
    Entity,
    NluExample,
    TrainingData,
    check_example,
    dump_jsonl,
    dump_yaml,
    load_yaml,
)
from gpt2_agent.nlu.templating import Slot, TemplateSet, parse_template

DATA_PACKAGE = "gpt2_agent.nlu.data"
TEMPLATES_FILE = "templates.yml"
DEMO_FILE = "nlu.yml"
EVAL_FILE = "eval.yml"
FRESH_FILE = "eval_fresh.yml"  # written after the templates were final; never used to change them

_FULLWIDTH_DIGITS = str.maketrans("0123456789", "０１２３４５６７８９")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_WORD = re.compile(r"[A-Za-z]{4,}")
_KEYBOARD_NEIGHBOURS = {
    "a": "sqw", "b": "vnh", "c": "xvd", "d": "sfe", "e": "wrd", "f": "dgr", "g": "fht", "h": "gjy",
    "i": "uok", "j": "hku", "k": "jli", "l": "kop", "m": "nj", "n": "bmh", "o": "ipl", "p": "ol",
    "q": "wa", "r": "etf", "s": "adw", "t": "ryg", "u": "yij", "v": "cbf", "w": "qes", "x": "zcs",
    "y": "tuh", "z": "xa",
}  # fmt: skip
_SLOT_ENTITIES = {"currency_sym": "currency"}
_FIRST_NAMES = ("li", "wang", "zhang", "liu", "chen", "yang", "zhao", "amy", "bob", "tom", "kate", "lucy",
                "john", "mary", "peter", "anna", "mike", "sara", "wei", "fang", "jing", "lei",
                "xiaoming")  # fmt: skip
_DOMAINS = ("example.com", "example.org", "corp.cn", "163.com", "qq.com", "gmail.com", "outlook.com",
            "company.com", "shop.cn", "mail.example.net", "acme.io", "sina.com", "foxmail.com")  # fmt: skip
_FILE_STEMS = ("invoice_{n}", "receipt-{n}", "发票_{n}", "收据{n}", "contract_{n}", "合同_{n}", "scan{n}",
               "photo_{n}", "report_{y}Q{q}", "报价单_{n}", "delivery-note-{n}", "bank_statement_{y}",
               "IMG_{n}", "签收单{n}", "order{n}_proof", "对账单-{y}-{q}", "summary", "data_export",
               "截图{n}", "payment-proof-{n}")  # fmt: skip
_FILE_EXTS = ("pdf", "pdf", "pdf", "png", "jpg", "jpeg", "xlsx", "xls", "csv", "docx", "doc", "txt", "zip",
              "json", "pptx")  # fmt: skip
_CURRENCY_AFTER = ("元", "元", "元", "块", "块钱", "人民币", "RMB", "rmb", "CNY", "yuan", "USD", "usd",
                   "美元",
                   "dollars", "EUR", "欧元", "euros", "HKD", "港币", "GBP", "英镑")  # fmt: skip
_CURRENCY_BEFORE = ("¥", "¥", "$", "$", "￥", "RMB ", "CNY ", "USD ", "€", "£", "HK$", "US$")
_CN_AMOUNTS = ("三千五", "两千", "五百", "一千二", "一万", "两万五", "八百八十八", "三百", "一千五百",
               "六千", "九百九十九",
               "四千五")  # fmt: skip


def _order_no(rng: random.Random) -> str:
    digits = rng.choices((4, 5, 5, 5, 5, 6, 6, 7, 8), k=1)[0]
    return str(rng.randrange(10 ** (digits - 1), 10**digits))


def _task_id(rng: random.Random) -> str:
    return str(rng.choice((rng.randrange(1, 10), rng.randrange(10, 100), rng.randrange(100, 1000),
                           rng.randrange(1000, 10000))))  # fmt: skip


def _amount(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.3:
        return str(rng.randrange(1, 100000))
    if kind < 0.5:
        value = rng.randrange(1000, 10_000_000)
        return f"{value:,}"
    if kind < 0.68:
        whole = rng.randrange(1, 20000)
        return (
            f"{whole}.{rng.randrange(0, 100):02d}"
            if rng.random() < 0.6
            else f"{whole}.{rng.randrange(1, 10)}"
        )
    if kind < 0.76:
        return f"{rng.randrange(1, 10_000):,}.{rng.randrange(0, 100):02d}"
    if kind < 0.86:
        return rng.choice(_CN_AMOUNTS)
    number = rng.choice((str(rng.randrange(1, 100)), f"{rng.randrange(1, 10)}.{rng.randrange(1, 10)}"))
    return number + rng.choice(("万", "千", "k", "K", "w"))


def _email(rng: random.Random) -> str:
    name = rng.choice(_FIRST_NAMES)
    style = rng.random()
    if style < 0.3:
        local = f"{name}.{rng.choice(_FIRST_NAMES)}"
    elif style < 0.6:
        local = f"{name}{rng.randrange(1, 999)}"
    elif style < 0.75:
        local = rng.choice(("billing", "sales", "ops", "finance", "support", "hr", "admin", "orders"))
    else:
        local = f"{name}_{rng.choice(_FIRST_NAMES)}"
    if rng.random() < 0.1:
        local = local.capitalize()
    return f"{local}@{rng.choice(_DOMAINS)}"


def _file_name(rng: random.Random) -> str:
    stem = rng.choice(_FILE_STEMS).format(
        n=rng.randrange(1, 99999), y=rng.randrange(2019, 2027), q=rng.randrange(1, 5)
    )
    return f"{stem}.{rng.choice(_FILE_EXTS)}"


SLOT_VALUES: dict[str, Callable[[random.Random], str]] = {
    "order_no": _order_no,
    "task_id": _task_id,
    "amount": _amount,
    "currency": lambda rng: rng.choice(_CURRENCY_AFTER),
    "currency_sym": lambda rng: rng.choice(_CURRENCY_BEFORE).strip(),
    "email": _email,
    "file_name": _file_name,
}


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.random()
    if kind < 0.3:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swap
    if kind < 0.55:
        return word[:i] + word[i + 1 :]  # drop
    if kind < 0.75:
        return word[:i] + word[i] + word[i:]  # double
    near = _KEYBOARD_NEIGHBOURS.get(word[i].lower())
    return word[:i] + (rng.choice(near) if near else word[i]) + word[i + 1 :]  # neighbour key


def _perturb_text(piece: str, rng: random.Random, typo: bool) -> str:
    if typo:
        words = list(_WORD.finditer(piece))
        if words:
            m = rng.choice(words)
            piece = piece[: m.start()] + _typo(m.group(0), rng) + piece[m.end() :]
    return piece


class Generator:
    """Renders templates into annotated examples."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.phrases = TemplateSet({k: list(v) for k, v in (spec.get("phrases") or {}).items()})
        self.templates = {
            intent: [parse_template(t) for t in items]
            for intent, items in (spec.get("templates") or {}).items()
        }
        self.counts = {k: int(v) for k, v in (spec.get("counts") or {}).items()}
        for intent, items in self.templates.items():
            if not items:
                raise TrainingDataError(f"templates: intent {intent} has no templates")

    def example(self, intent: str, rng: random.Random) -> NluExample:
        """One random, perturbed example of ``intent``."""
        parts = self.phrases.render(rng.choice(self.templates[intent]), rng)
        typo_at = rng.randrange(len(parts)) if rng.random() < 0.2 else -1
        fullwidth = rng.random() < 0.08
        text = ""
        entities = []
        for index, part in enumerate(parts):
            if isinstance(part, Slot):
                value = SLOT_VALUES[part.name](rng)
                if fullwidth and part.name in ("order_no", "amount", "task_id"):
                    value = value.translate(_FULLWIDTH_DIGITS)
                entity = _SLOT_ENTITIES.get(part.name, part.name)
                entities.append(Entity(entity, len(text), len(text) + len(value)))
                text += value
            else:
                text += _perturb_text(part, rng, index == typo_at)
        text, entities = self._surface(text, entities, rng)
        return check_example(NluExample(text, intent, tuple(entities)), f"generated {intent}: ")

    @staticmethod
    def _surface(text: str, entities: list[Entity], rng: random.Random) -> tuple[str, list[Entity]]:
        """Capitalisation and edge whitespace; offsets are kept valid."""
        stripped = text.strip()
        shift = len(text) - len(text.lstrip())
        entities = [Entity(e.entity, e.start - shift, e.end - shift, e.value) for e in entities]
        text = stripped
        if not _CJK.search(text) and text:
            roll = rng.random()
            if roll < 0.4:
                text = text[0].upper() + text[1:]
            elif roll < 0.43:
                text = text.upper()
        if text and any(e.start < 0 or e.end > len(text) for e in entities):
            raise TrainingDataError(f"template produced an entity at the edge of {text!r}")
        return text, entities

    def generate(self, seed: int = 0, counts: dict[str, int] | None = None) -> TrainingData:
        """``counts[intent]`` distinct examples per intent (fewer if the templates cannot make that many)."""
        rng = random.Random(seed)
        wanted = {**self.counts, **(counts or {})}
        examples = []
        for intent in self.templates:
            target = wanted.get(intent, 200)
            seen: set[str] = set()
            attempts = 0
            while len(seen) < target and attempts < target * 20:
                attempts += 1
                ex = self.example(intent, rng)
                if ex.text in seen:
                    continue
                seen.add(ex.text)
                examples.append(ex)
        return TrainingData(examples=examples)


def _read_package_file(name: str) -> str:
    return resources.files(DATA_PACKAGE).joinpath(name).read_text(encoding="utf-8")


def load_templates(path: str | Path | None = None) -> Generator:
    """The generator for a templates YAML file (default: the packaged demo templates)."""
    text = Path(path).read_text(encoding="utf-8") if path else _read_package_file(TEMPLATES_FILE)
    try:
        spec = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise TrainingDataError(f"{path or TEMPLATES_FILE}: invalid YAML: {exc}") from None
    return Generator(spec)


def demo_data_path(name: str = DEMO_FILE) -> Path:
    """Path of a packaged data file (``nlu.yml``, ``eval.yml``, ``templates.yml``)."""
    return Path(str(resources.files(DATA_PACKAGE).joinpath(name)))


def generate_demo_data(
    seed: int = 0, *, scale: float = 1.0, templates: str | Path | None = None, include_demo: bool = True
) -> TrainingData:
    """Generated examples (``scale`` × the configured counts) plus the hand-written ``nlu.yml``."""
    generator = load_templates(templates)
    counts = {k: max(1, round(v * scale)) for k, v in generator.counts.items()}
    data = generator.generate(seed, counts)
    if include_demo:
        data = load_yaml(demo_data_path(DEMO_FILE)).merge(data)
    return data


def eval_data(name: str = EVAL_FILE) -> TrainingData:
    """A hand-written evaluation set: ``eval.yml`` (default) or ``eval_fresh.yml``."""
    return load_yaml(demo_data_path(name))


def main(argv: list[str] | None = None) -> None:
    """``python -m gpt2_agent.nlu.generate --out demo.yml [--seed 0] [--scale 1.0]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output file (.yml or .jsonl)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    data = generate_demo_data(args.seed, scale=args.scale)
    if args.out.endswith(".jsonl"):
        dump_jsonl(data, args.out)
    else:
        dump_yaml(data, args.out)


if __name__ == "__main__":
    main()


__all__ = [
    "EVAL_FILE",
    "FRESH_FILE",
    "SLOT_VALUES",
    "Generator",
    "demo_data_path",
    "eval_data",
    "generate_demo_data",
    "load_templates",
]
