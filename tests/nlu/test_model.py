"""A tiny joint NLU model trained in the test run parses utterances it never saw."""

from __future__ import annotations

import json

from gpt2_agent.modeling import SPARSE_FEATURES_FILE, NgramFeaturizer
from gpt2_agent.nlu.evaluation import evaluate_parser
from gpt2_agent.nlu.generate import FRESH_FILE, eval_data, generate_demo_data
from gpt2_agent.nlu.predictor import NLU_FILE, PATTERNS_FILE
from gpt2_agent.nlu.train import NluTrainResult, _text_key, parser_for_folder

# Written for this test: not in the templates' output, not in the evaluation sets.
UNSEEN = [
    ("请帮我审核订单 73519", "order_audit", {"order_no": "73519"}),
    ("audit order 40981 please", "order_audit", {"order_no": "40981"}),
    ("订单 28164 需要审批", "order_audit", {"order_no": "28164"}),
    ("review order #51730", "order_audit", {"order_no": "51730"}),
    (
        "支付订单 60318，金额 2,350 元",
        "order_payment",
        {"order_no": "60318", "amount": "2350.00", "currency": "CNY"},
    ),
    (
        "pay order 81520, 99.5 USD",
        "order_payment",
        {"order_no": "81520", "amount": "99.50", "currency": "USD"},
    ),
    (
        "订单９１２０３付款３００块",
        "order_payment",
        {"order_no": "91203", "amount": "300.00", "currency": "CNY"},
    ),
    (
        "charge $1,200 for order 37711",
        "order_payment",
        {"order_no": "37711", "amount": "1200.00", "currency": "USD"},
    ),
    ("任务 318 现在什么状态", "task_status", {"task_id": "318"}),
    ("what's the status of task 77", "task_status", {"task_id": "77"}),
    ("is task 5120 done yet?", "task_status", {"task_id": "5120"}),
    ("订单 44719 的付款成功了吗", "task_status", {"order_no": "44719"}),
    ("取消任务 615", "cancel_task", {"task_id": "615"}),
    ("cancel task 2041 please", "cancel_task", {"task_id": "2041"}),
    ("任务 93 不要了，取消吧", "cancel_task", {"task_id": "93"}),
    ("stop task 4410", "cancel_task", {"task_id": "4410"}),
    (
        "把订单 52061 的收据发到 zhou.min@example.com",
        "send_email",
        {"order_no": "52061", "email": "zhou.min@example.com"},
    ),
    ("send an email to ops.desk@corp.cn", "send_email", {"email": "ops.desk@corp.cn"}),
    ("给 li_hua@163.com 发一封邮件", "send_email", {"email": "li_hua@163.com"}),
    (
        "email the invoice for order 28461 to buyer7@shop.cn",
        "send_email",
        {"order_no": "28461", "email": "buyer7@shop.cn"},
    ),
    ("上传 invoice_52061.pdf", "upload_file", {"file_name": "invoice_52061.pdf"}),
    ("upload receipt-28461.png", "upload_file", {"file_name": "receipt-28461.png"}),
    ("帮我把 发票_73519.pdf 传上去", "upload_file", {"file_name": "发票_73519.pdf"}),
    ("please attach scan_3301.jpg", "upload_file", {"file_name": "scan_3301.jpg"}),
    ("你好，今天好吗", "greet", {}),
    ("hello again", "greet", {}),
    ("早上好，在线吗", "greet", {}),
    ("你都会些什么", "help", {}),
    ("what can you do for me", "help", {}),
    ("讲个笑话给我听", "out_of_scope", {}),
    ("tell me a joke please", "out_of_scope", {}),
    ("recommend a movie tonight", "out_of_scope", {}),
]


def _values(parse: dict) -> dict[str, str]:
    return {e["entity"]: e["value"] for e in parse["entities"]}


def test_the_artifact_carries_patterns_and_parser_settings(tiny_nlu: NluTrainResult) -> None:
    folder = tiny_nlu.model_dir
    files = ("config.json", "model.safetensors", "tokenizer.json", "heads.json", PATTERNS_FILE, NLU_FILE)
    for name in (*files, SPARSE_FEATURES_FILE):  # configs/nlu.tiny.toml reads n-gram features
        assert (folder / name).is_file(), name
    heads = json.loads((folder / "heads.json").read_text(encoding="utf-8"))
    assert heads["sparse_features"] == len(NgramFeaturizer.load(folder).terms) > 0
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["eval_examples"] == len(eval_data().examples)
    assert 0 <= metrics["intent_accuracy"] <= 1 and "fresh_intent_accuracy" in metrics


def test_unseen_utterances_are_parsed(tiny_nlu: NluTrainResult) -> None:
    generated = {_text_key(ex.text) for ex in generate_demo_data(0, scale=0.35).examples}
    assert not [t for t, *_ in UNSEEN if _text_key(t) in generated], "test utterances must be unseen"
    parser = parser_for_folder(tiny_nlu.model_dir)
    parses = parser.parse_batch([t for t, *_ in UNSEEN])
    intents_ok = [p["intent"]["name"] == intent for p, (_, intent, _) in zip(parses, UNSEEN, strict=True)]
    values_ok = [_values(p) == values for p, (_, _, values) in zip(parses, UNSEEN, strict=True)]
    rows = zip(parses, UNSEEN, intents_ok, values_ok, strict=True)
    wrong = [(t, p["intent"]["name"], _values(p)) for p, (t, *_), a, b in rows if not (a and b)]
    # Entities come from model + rules and are reliable; the intent is the tiny model's alone.
    assert sum(values_ok) >= len(UNSEEN) - 1, wrong
    assert sum(intents_ok) >= 0.85 * len(UNSEEN), wrong


def test_scores_on_the_hand_written_evaluation_sets(tiny_nlu: NluTrainResult) -> None:
    parser = parser_for_folder(tiny_nlu.model_dir)
    for name in (None, FRESH_FILE):
        data = eval_data(name) if name else eval_data()
        m = evaluate_parser(parser, data.examples)
        # The tiny model's floor; the full configs/nlu.toml model is measured in bench/nlu.py.
        assert m["intent_accuracy"] >= 0.75, (name, m["errors"])
        assert m["slot_f1"] >= 0.9, (name, m["errors"])


def test_hostile_text_parses_without_errors(tiny_nlu: NluTrainResult) -> None:
    parser = parser_for_folder(tiny_nlu.model_dir)
    for text in ["", " ", "🙂", "\x00\x01\x02", "a" * 500, "订单" * 200, "\u202e\u200b𝔘𝔫𝔦𝔠𝔬𝔡𝔢 #12345"]:
        parse = parser.parse(text)
        assert parse["text"] == text and parse["intent"]["name"]
        for e in parse["entities"]:
            assert 0 <= e["start"] < e["end"] <= len(text)
