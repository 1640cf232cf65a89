"""Text → Rasa-shaped parse: intent with confidence and ranking, entities with offsets and values.

The parser combines two views of the text. The model (one GPT-2, two heads) gives the intent
distribution and BIO slot spans; the rule extractors give structured entities they can see for
certain (an e-mail address, a number right after "订单"). They are merged like this:

* a rule span with telling context is kept; the model agreeing raises its confidence;
* a bare number (``66120`` with no context) takes the entity type the model tagged it with, or
  the slot the dialogue is waiting for (``expected``); otherwise it is dropped;
* a model span no rule found is kept when its text normalises to a valid value of its type
  (``三千五`` is an amount, ``pay`` is not), and a model file name must have an extension.

Every value is normalised (amount → two-decimal string, full-width → ASCII, currency → ISO code).
Below ``min_confidence`` the intent becomes ``out_of_scope``; the ranking still shows the model's view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gpt2_agent.nlu.extractors import NUMBER_ENTITY, Candidate, EntityExtractor, retype
from gpt2_agent.nlu.predictor import ModelSpan, RawPrediction
from gpt2_agent.nlu.text import normalize

OUT_OF_SCOPE = "out_of_scope"
NUMERIC_ENTITIES = ("order_no", "amount", "task_id")
MODEL_MIN_SPAN_CONFIDENCE = 0.5
RANKING_SIZE = 10

Predict = Callable[[list[str]], list[RawPrediction]]


def merge_entities(
    text: str,
    candidates: Sequence[Candidate],
    spans: Sequence[ModelSpan],
    extractor: EntityExtractor,
    *,
    expected: str | None = None,
) -> list[dict[str, Any]]:
    """Combine rule candidates and model spans over the normalised ``text`` (see the module doc)."""
    chosen: list[tuple[Candidate, str]] = []  # (candidate, extractor name)
    used: set[int] = set()
    ruled = {c.entity for c in candidates if c.entity != NUMBER_ENTITY}
    for cand in candidates:
        overlapping = [i for i, m in enumerate(spans) if m.start < cand.end and cand.start < m.end]
        used.update(overlapping)
        if cand.entity == NUMBER_ENTITY:
            resolved = _resolve_number(
                text, cand, [spans[i] for i in overlapping], extractor, expected, ruled
            )
            if resolved is not None:
                chosen.append(resolved)
            continue
        agreeing = [spans[i] for i in overlapping if spans[i].entity == cand.entity]
        if agreeing:
            best = max(m.confidence for m in agreeing)
            wider = _wider_file_name(text, cand, agreeing, extractor)
            chosen.append(
                (wider or retype(cand, cand.entity, cand.value, max(cand.confidence, best)), "regex+model")
            )
        else:
            chosen.append((cand, cand.extractor))
    for i, span in enumerate(spans):
        if i in used or span.confidence < MODEL_MIN_SPAN_CONFIDENCE:
            continue
        if any(c.start < span.end and span.start < c.end for c, _ in chosen):
            continue
        raw = text[span.start : span.end]
        if span.entity == "file_name" and "." not in raw.strip(".").rstrip():
            continue
        value = extractor.canonical(span.entity, raw)
        if value is None:
            continue
        chosen.append(
            (Candidate(span.entity, span.start, span.end, value, span.confidence, "model"), "model")
        )
    chosen.sort(key=lambda item: item[0].start)
    return [
        {
            "entity": c.entity,
            "value": c.value,
            "start": c.start,
            "end": c.end,
            "confidence": round(float(c.confidence), 4),
            "extractor": name,
        }
        for c, name in chosen
    ]


def _resolve_number(
    text: str,
    cand: Candidate,
    overlapping: Sequence[ModelSpan],
    extractor: EntityExtractor,
    expected: str | None,
    ruled: set[str],
) -> tuple[Candidate, str] | None:
    raw = text[cand.start : cand.end]
    if expected in NUMERIC_ENTITIES:
        # The dialogue asked for exactly this slot; a bare number is the answer.
        value = extractor.canonical(expected, raw)
        if value is not None:
            return retype(cand, expected, value, 0.9), "context"
    typed = [m for m in overlapping if m.entity in NUMERIC_ENTITIES]
    if not typed:
        return None
    best = max(typed, key=lambda m: m.confidence)
    entity = best.entity
    if entity == "amount" and "amount" in ruled and "order_no" not in ruled and len(raw) >= 4:
        # A rule already found the amount (with its currency); the other long number is the order.
        entity = "order_no"
    value = extractor.canonical(entity, raw)
    if value is None:
        return None
    return retype(cand, entity, value, best.confidence), "model+regex"


def _wider_file_name(
    text: str, cand: Candidate, agreeing: Sequence[ModelSpan], extractor: EntityExtractor
) -> Candidate | None:
    """A model file-name span that ends where the rule's does but starts earlier ("发票_1.pdf")."""
    if cand.entity != "file_name":
        return None
    for span in agreeing:
        gap = text[span.start : cand.start]
        if span.start < cand.start and span.end >= cand.end and not any(ch.isspace() for ch in gap):
            value = extractor.canonical("file_name", text[span.start : cand.end])
            if value is not None:
                return Candidate(
                    "file_name", span.start, cand.end, value, max(span.confidence, cand.confidence), "model"
                )
    return None


class NluParser:
    """Parses texts with a model (optional) and the rule extractors. Thread-safe.

    :param predict: the model's batched prediction (``JointPredictor.predict`` or a micro-batcher
        over it); ``None`` parses with rules only (intent ``out_of_scope``, confidence 0).
    :param extractor: rule extractors, usually built from the model's ``patterns.json``.
    :param min_confidence: below this top intent probability the intent is ``out_of_scope``.
    """

    def __init__(
        self,
        predict: Predict | None,
        extractor: EntityExtractor | None = None,
        *,
        min_confidence: float = 0.5,
        ranking_size: int = RANKING_SIZE,
    ) -> None:
        self.predict = predict
        self.extractor = extractor or EntityExtractor()
        self.min_confidence = min_confidence
        self.ranking_size = ranking_size

    def parse(self, text: str, *, expected: str | None = None) -> dict[str, Any]:
        """The parse of one text (see :meth:`parse_batch`)."""
        return self.parse_batch([text], expected=expected)[0]

    def parse_batch(self, texts: Sequence[str], *, expected: str | None = None) -> list[dict[str, Any]]:
        """Rasa-shaped parses: ``{"text", "intent": {"name", "confidence"}, "entities": [...],
        "intent_ranking": [...]}``. ``expected`` names the slot a dialogue is waiting for."""
        normalized = [normalize(t) for t in texts]
        raw: list[RawPrediction | None] = (
            list(self.predict(normalized)) if self.predict is not None else [None] * len(texts)
        )
        return [self._one(t, n, r, expected) for t, n, r in zip(texts, normalized, raw, strict=True)]

    def _one(self, text: str, norm: str, raw: RawPrediction | None, expected: str | None) -> dict[str, Any]:
        candidates = self.extractor.extract(norm)
        spans = raw.spans if raw is not None else ()
        entities = merge_entities(norm, candidates, spans, self.extractor, expected=expected)
        ranking: list[dict[str, Any]] = [
            {"name": name, "confidence": round(float(p), 4)} for name, p in (raw.intents if raw else ())
        ]
        if ranking and ranking[0]["confidence"] >= self.min_confidence:
            intent = dict(ranking[0])
        else:
            intent = {"name": OUT_OF_SCOPE, "confidence": ranking[0]["confidence"] if ranking else 0.0}
            if ranking and ranking[0]["name"] != OUT_OF_SCOPE:
                intent["fallback_from"] = ranking[0]["name"]
        return {
            "text": text,
            "intent": intent,
            "entities": entities,
            "intent_ranking": ranking[: self.ranking_size],
        }


__all__ = ["NUMERIC_ENTITIES", "OUT_OF_SCOPE", "NluParser", "merge_entities"]
