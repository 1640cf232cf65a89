"""A keyword intent model in place of the trained one, so dialogue tests do not depend on how well a
tiny model learned. Entities still come from the real extractors and merge rules (``NluParser``)."""

from __future__ import annotations

import re

from gpt2_agent.nlu.parser import NluParser
from gpt2_agent.nlu.predictor import ModelSpan, RawPrediction

INTENTS = ("order_audit", "order_payment", "task_status", "send_email", "upload_file", "cancel_task", "greet",
           "help", "out_of_scope")  # fmt: skip
RULES = (
    ("task_status", r"status|状态|进度|go through|成功了吗|done yet|怎么样了"),
    ("cancel_task", r"cancel|取消任务|stop task"),
    ("order_payment", r"\bpay|付款|支付|charge"),
    ("order_audit", r"audit|审核|review"),
    ("send_email", r"e-?mail|邮件"),
    ("upload_file", r"upload|上传"),
    ("greet", r"^(hi|hello|你好)"),
    ("help", r"help|帮助"),
)


def keyword_predict(texts: list[str]) -> list[RawPrediction]:
    out = []
    for text in texts:
        name = next((intent for intent, pattern in RULES if re.search(pattern, text, re.I)), None)
        if name is None:
            # Bare values and yes/no answers: no telling intent, as a model would be unsure.
            ranking = tuple((i, 0.3 if i == "out_of_scope" else 0.7 / 8) for i in INTENTS)
        else:
            ranking = tuple((i, 0.9 if i == name else 0.1 / 8) for i in INTENTS)
        # Like a slot head: long digit runs are order numbers.
        spans = tuple(ModelSpan("order_no", m.start(), m.end(), 0.8) for m in re.finditer(r"\d{5,}", text))
        out.append(RawPrediction(tuple(sorted(ranking, key=lambda kv: -kv[1])), spans))
    return out


def keyword_parser() -> NluParser:
    return NluParser(keyword_predict, min_confidence=0.5)
