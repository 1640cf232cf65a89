"""Rule-based entity extractors: regular expressions with context, lookup tables and synonyms.

Structured entities have a shape a model can get wrong and a rule cannot: an e-mail address, a
file name with an extension, a number right after "订单"/"order". These extractors find such
spans with high confidence; a number with no telling context (``66120`` alone) becomes an
ambiguous ``number`` candidate that the parser resolves with the model's slot tags (see
:mod:`gpt2_agent.nlu.merge`). Training data may add ``regex:`` patterns and ``lookup:`` tables
per entity and ``synonym:`` lists (canonical value → surface forms), as in Rasa.

All offsets index the text given, which is the length-preserving normalised copy of the user's
text (:func:`gpt2_agent.nlu.text.normalize`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gpt2_agent.nlu.values import CURRENCY_WORDS, normalize_value

NUMBER_ENTITY = "number"  # a number whose entity type the context does not tell

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_CN_NUM = r"[零〇一二两三四五六七八九十百千万亿壹贰叁肆伍陆柒捌玖拾佰仟]+"
_MULT = r"(?:\s?(?:万|千|[kKwW](?![A-Za-z])))?"
# Currency words that follow an amount; longest first so "块钱" wins over "块".
_CUR_AFTER = sorted(
    (w for w in CURRENCY_WORDS if w not in ("$", "us$", "hk$", "€", "£", "¥", "￥", "rmb¥")),
    key=len,
    reverse=True,
)
_CUR_AFTER_RE = "|".join(re.escape(w) for w in _CUR_AFTER)
_CUR_BEFORE_RE = r"us\$|hk\$|rmb|cny|usd|eur|gbp|hkd|jpy|[¥￥$€£]"
_NOT_WORD_BEFORE = r"(?<![A-Za-z0-9_.])"
_NOT_WORD_AFTER = r"(?![A-Za-z0-9_])"

EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
FILE_EXTENSIONS = (
    "pdf", "png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff", "xls", "xlsx", "csv", "doc",
    "docx", "txt", "zip", "rar", "7z", "json", "xml", "ppt", "pptx", "md", "html", "ofd",
)  # fmt: skip
# A file name: word characters (Chinese too), dots, dashes, brackets, then a known extension. Chinese
# verbs glued to its left are not part of it ("上传发票_66120.pdf" names "发票_66120.pdf").
FILE_NAME = re.compile(
    r"(?<![\w.\-@/])[\w()（）\-]+?(?:\.[\w()（）\-]+)*?\.(?:"
    + "|".join(FILE_EXTENSIONS)
    + r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)
FILE_NAME_PREFIX_WORDS = (
    "帮我把", "帮忙把", "帮我", "请把", "麻烦把", "麻烦", "上传一下", "上传", "上载", "传一下", "传",
    "把", "将",
    "附上", "附件", "请", "文件", "一下", "下", "存一下", "保存", "提交", "这个", "那个",
)  # fmt: skip
_CJK_START = re.compile(r"^[\u4e00-\u9fff]")

ORDER_BEFORE = re.compile(
    r"(?:订单号码|订单编号|订单号|订单|(?<![工作])单号|order\s*(?:no\.?|number|num|id|#)|order|(?<![工作])单)"
    r"\s*(?:号|#|:|：|no\.?|number)?\s*#?\s*(?P<num>\d{3,12})" + _NOT_WORD_AFTER,
    re.IGNORECASE,
)
ORDER_AFTER = re.compile(_NOT_WORD_BEFORE + r"#?(?P<num>\d{3,12})\s*(?:号)?\s*(?:订单|的订单|这单|这个订单)")
ORDER_HASH = re.compile(r"(?<![A-Za-z0-9&])#\s?(?P<num>\d{4,12})" + _NOT_WORD_AFTER)
TASK_BEFORE = re.compile(
    r"(?:任务编号|任务号|任务|作业|流程|工单|task|job|run|ticket)\s*(?:id|号|#|:|：|no\.?|number)?\s*#?\s*"
    r"(?P<num>\d{1,12})" + _NOT_WORD_AFTER,
    re.IGNORECASE,
)
TASK_AFTER = re.compile(_NOT_WORD_BEFORE + r"#?(?P<num>\d{1,12})\s*号?\s*(?:任务|流程)")
AMOUNT_CUR_AFTER = re.compile(
    _NOT_WORD_BEFORE + r"(?P<num>(?:" + _NUM + r")" + _MULT + r"|" + _CN_NUM + r")\s?"
    r"(?P<cur>" + _CUR_AFTER_RE + r")(?![A-Za-z])",
    re.IGNORECASE,
)
AMOUNT_CUR_BEFORE = re.compile(
    r"(?<![A-Za-z])(?P<cur>"
    + _CUR_BEFORE_RE
    + r")\s?(?P<num>(?:"
    + _NUM
    + r")"
    + _MULT
    + r")"
    + _NOT_WORD_AFTER,
    re.IGNORECASE,
)
AMOUNT_KEYWORD = re.compile(
    r"(?:金额|总额|总价|价格|价钱|费用|合计|共计|总计|一共|共|amount|total|sum|price|cost)"
    r"\s*(?:是|为|是多少|of|is|:|：|=)?\s*(?P<num>(?:" + _NUM + r")" + _MULT + r")" + _NOT_WORD_AFTER,
    re.IGNORECASE,
)
GROUPED_OR_DECIMAL = re.compile(
    _NOT_WORD_BEFORE
    + r"(?P<num>\d+(?:\.\d+)?\s?(?:万|千|[kK])|\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+\.\d{1,2})"
    + _NOT_WORD_AFTER
)
CURRENCY_STANDALONE = re.compile(
    r"(?<![A-Za-z])(?P<cur>人民币|美元|美金|欧元|英镑|港币|港元|日元|rmb|cny|usd|eur|gbp|hkd|jpy|yuan|"
    r"dollars?|euros?|pounds?)(?![A-Za-z])",
    re.IGNORECASE,
)
BARE_NUMBER = re.compile(_NOT_WORD_BEFORE + r"(?P<num>\d{1,12})" + _NOT_WORD_AFTER)


@dataclass(frozen=True)
class Candidate:
    """A span an extractor proposes. ``entity`` may be :data:`NUMBER_ENTITY` (type unknown)."""

    entity: str
    start: int
    end: int
    value: str
    confidence: float
    extractor: str  # "regex" | "lookup"

    def overlaps(self, start: int, end: int) -> bool:
        """Whether ``[start, end)`` shares a character with this span."""
        return self.start < end and start < self.end


@dataclass
class Patterns:
    """User-supplied ``regex`` patterns and ``lookup`` tables per entity, and ``synonyms``."""

    regexes: dict[str, list[str]] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)
    synonyms: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Patterns:
        """From :meth:`TrainingData.patterns` output (``patterns.json`` of a model)."""
        data = data or {}
        return cls(
            regexes={str(k): [str(x) for x in v] for k, v in (data.get("regexes") or {}).items()},
            lookups={str(k): [str(x) for x in v] for k, v in (data.get("lookups") or {}).items()},
            synonyms={str(k): [str(x) for x in v] for k, v in (data.get("synonyms") or {}).items()},
        )


class EntityExtractor:
    """Finds structured entities by rule. Thread-safe after construction (compiled patterns only)."""

    def __init__(self, patterns: Patterns | None = None) -> None:
        patterns = patterns or Patterns()
        self._user_regexes = [
            (entity, re.compile(p, re.IGNORECASE)) for entity, ps in patterns.regexes.items() for p in ps
        ]
        self._lookups: list[tuple[str, re.Pattern[str]]] = []
        for entity, words in patterns.lookups.items():
            if not words:
                continue
            alternatives = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))
            self._lookups.append(
                (entity, re.compile(r"(?<![A-Za-z0-9])(?:" + alternatives + r")(?![A-Za-z0-9])", re.I))
            )
        self._synonyms = {
            surface.lower(): canonical for canonical, forms in patterns.synonyms.items() for surface in forms
        }

    def canonical(self, entity: str, raw: str) -> str | None:
        """The normalised value of ``raw`` for ``entity``, after synonyms."""
        synonym = self._synonyms.get(raw.strip().lower())
        if synonym is not None:
            return synonym
        return normalize_value(entity, raw)

    def extract(self, text: str) -> list[Candidate]:
        """Non-overlapping candidates in ``text``, sorted by start (strongest wins an overlap)."""
        found: list[Candidate] = []
        add = found.append
        for m in EMAIL.finditer(text):
            self._add(add, "email", m.start(), m.end(), text, 0.99)
        for m in FILE_NAME.finditer(text):
            start = self._file_name_start(text, m.start(), m.end())
            self._add(add, "file_name", start, m.end(), text, 0.97)
        for pattern, entity, confidence in (
            (ORDER_BEFORE, "order_no", 0.95),
            (ORDER_AFTER, "order_no", 0.93),
            (TASK_BEFORE, "task_id", 0.95),
            (TASK_AFTER, "task_id", 0.9),
            (ORDER_HASH, "order_no", 0.8),
        ):
            for m in pattern.finditer(text):
                self._add(add, entity, m.start("num"), m.end("num"), text, confidence)
        for pattern in (AMOUNT_CUR_AFTER, AMOUNT_CUR_BEFORE):
            for m in pattern.finditer(text):
                self._add(add, "amount", m.start("num"), m.end("num"), text, 0.96)
                self._add(add, "currency", m.start("cur"), m.end("cur"), text, 0.97)
        for m in AMOUNT_KEYWORD.finditer(text):
            self._add(add, "amount", m.start("num"), m.end("num"), text, 0.92)
        for m in GROUPED_OR_DECIMAL.finditer(text):
            self._add(add, "amount", m.start("num"), m.end("num"), text, 0.85)
        for m in CURRENCY_STANDALONE.finditer(text):
            self._add(add, "currency", m.start("cur"), m.end("cur"), text, 0.9)
        for entity, regex in self._user_regexes:
            for m in regex.finditer(text):
                if m.end() > m.start():
                    self._add(add, entity, m.start(), m.end(), text, 0.9)
        for entity, regex in self._lookups:
            for m in regex.finditer(text):
                self._add(add, entity, m.start(), m.end(), text, 0.9, extractor="lookup")
        for m in BARE_NUMBER.finditer(text):
            # Weakest of all: any typed candidate on the same digits wins the overlap.
            add(Candidate(NUMBER_ENTITY, m.start("num"), m.end("num"), m.group("num"), 0.3, "regex"))
        return resolve_overlaps(found)

    def _add(
        self,
        add: Any,
        entity: str,
        start: int,
        end: int,
        text: str,
        confidence: float,
        *,
        extractor: str = "regex",
    ) -> None:
        value = self.canonical(entity, text[start:end])
        if value is not None:
            add(Candidate(entity, start, end, value, confidence, extractor))

    @staticmethod
    def _file_name_start(text: str, start: int, end: int) -> int:
        """Skip leading Chinese verbs and particles of a matched file name."""
        changed = True
        while changed and _CJK_START.match(text[start:end]):
            changed = False
            for word in FILE_NAME_PREFIX_WORDS:
                if text.startswith(word, start) and end - start - len(word) > 5:
                    start += len(word)
                    changed = True
                    break
        return start


def resolve_overlaps(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Keep the strongest of overlapping candidates (confidence, then length), sorted by start."""
    chosen: list[Candidate] = []
    for cand in sorted(candidates, key=lambda c: (-c.confidence, -(c.end - c.start), c.start)):
        if not any(c.overlaps(cand.start, cand.end) for c in chosen):
            chosen.append(cand)
    return sorted(chosen, key=lambda c: c.start)


def retype(candidate: Candidate, entity: str, value: str, confidence: float) -> Candidate:
    """The same span as another entity type."""
    return replace(candidate, entity=entity, value=value, confidence=confidence)


def spans_of(candidates: Sequence[Candidate], entity: str) -> list[Candidate]:
    """Candidates of one entity type."""
    return [c for c in candidates if c.entity == entity]


__all__ = [
    "FILE_EXTENSIONS",
    "NUMBER_ENTITY",
    "Candidate",
    "EntityExtractor",
    "Patterns",
    "resolve_overlaps",
    "retype",
    "spans_of",
]
