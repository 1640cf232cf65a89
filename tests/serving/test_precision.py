"""Precision choice: Conv1D → Linear, the int8 quantization gate, bf16 autocast, check samples."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tests.serving.conftest import (
    LABELS,
    MODEL,
    Publish,
    order_texts,
    publish_model,
    reference_probabilities,
    tiny_classifier,
)
from transformers import GPT2ForSequenceClassification, PreTrainedTokenizerFast

from gpt2_agent.config import Settings
from gpt2_agent.registry import Registry
from gpt2_agent.serving import EVAL_SAMPLE_FILE, CheckSample, ServingRuntime, to_linear
from gpt2_agent.serving.precision import bf16_matmul_weights, parse_sample


@pytest.fixture
def make_runtime(sqlite_settings: Settings, registry: Registry) -> Iterator[type[ServingRuntime]]:
    made: list[ServingRuntime] = []

    def make(**kwargs: object) -> ServingRuntime:
        rt = ServingRuntime(sqlite_settings, registry, threads=1, reload_interval_s=0, **kwargs)  # type: ignore[arg-type]
        made.append(rt)
        return rt

    yield make  # type: ignore[misc]
    for rt in made:
        rt.close()


def labelled_sample(
    model: GPT2ForSequenceClassification, tokenizer: PreTrainedTokenizerFast, n: int = 120
) -> CheckSample:
    """Texts labelled with the fp32 model's own answers, so fp32 accuracy is exactly 1."""
    texts = order_texts(n, seed=42)
    probs = reference_probabilities(model, tokenizer, texts)
    return CheckSample.of(texts, [LABELS[int(i)] for i in probs.argmax(-1)])


def sabotage_int8(model: GPT2ForSequenceClassification) -> None:
    """Make int8 quantization destroy the MLPs while leaving fp32 answers unchanged.

    One MLP unit is switched off (its pre-activation is -100, so GELU gives 0); its outgoing weights
    are huge. In fp32 they multiply 0 and change nothing, but they set every output channel's int8
    scale so coarse that all the other weights of the layer round to zero.
    """
    with torch.no_grad():
        for block in model.transformer.h:
            block.mlp.c_fc.weight[:, 0] = 0.0
            block.mlp.c_fc.bias[0] = -100.0
            block.mlp.c_proj.weight[0, :] = 1e4


def test_to_linear_matches_conv1d(tokenizer: PreTrainedTokenizerFast) -> None:
    model = tiny_classifier(tokenizer, seed=1)
    converted = copy.deepcopy(model)
    assert to_linear(converted) == 4 * model.config.n_layer
    ids = torch.tensor([tokenizer("1.00 CNY | web | 商品: 保温杯")["input_ids"]])
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        want, got = (
            model(input_ids=ids, attention_mask=mask).logits,
            converted(input_ids=ids, attention_mask=mask).logits,
        )
    assert torch.allclose(want, got, atol=1e-5)


def test_bf16_weights_give_the_autocast_numbers(tokenizer: PreTrainedTokenizerFast) -> None:
    model = tiny_classifier(tokenizer, seed=2)
    cast = bf16_matmul_weights(model)
    assert cast.transformer.h[0].attn.c_attn.weight.dtype == torch.bfloat16
    assert cast.transformer.wte.weight.dtype == torch.float32 and model.score.weight.dtype == torch.float32
    ids = torch.tensor([tokenizer("88.00 CNY | app | 商品: 台灯, 茶叶")["input_ids"]])
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = model.transformer(input_ids=ids).last_hidden_state
        got = cast.transformer(input_ids=ids).last_hidden_state
    assert torch.equal(want, got)


def test_int8_accepted_within_tolerance_from_stored_sample(
    make_runtime: type[ServingRuntime], registry: Registry, tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    model = tiny_classifier(tokenizer, seed=3, n_embd=64)
    sample = labelled_sample(model, tokenizer)
    folder = tmp_path / "with-sample"
    folder.mkdir()
    stored = {"texts": list(sample.texts), "labels": [LABELS.index(x) for x in sample.labels or ()]}
    (folder / EVAL_SAMPLE_FILE).write_text(json.dumps(stored, ensure_ascii=False), encoding="utf-8")
    version = publish_model(registry, folder, model, tokenizer)
    rt = make_runtime(quantize=True, quantize_tolerance=0.05, dtype="fp32")
    predictions = rt.predict(MODEL, list(sample.texts))
    info = rt.info(MODEL)
    assert info["version"] == version and info["precision"] == "int8", info
    details = info["precision_info"]
    assert details["sample"].endswith(EVAL_SAMPLE_FILE) and details["sample_size"] == len(sample.texts)
    assert details["fp32_accuracy"] == 1.0 and details["int8_accuracy"] >= 0.95
    agreement = sum(p.label == want for p, want in zip(predictions, sample.labels or (), strict=True))
    # int8 activation scales are per batch, so served answers may differ a little from the check's
    assert agreement / len(predictions) >= 0.95


def test_int8_refused_when_tolerance_exceeded(
    make_runtime: type[ServingRuntime],
    publish: Publish,
    tokenizer: PreTrainedTokenizerFast,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = tiny_classifier(tokenizer, seed=4, n_embd=64)
    sabotage_int8(model)
    sample = labelled_sample(model, tokenizer)
    publish(model)
    rt = make_runtime(quantize=True, quantize_tolerance=0.01, dtype="fp32", check_samples={MODEL: sample})
    with caplog.at_level(logging.WARNING, logger="gpt2_agent.serving"):
        predictions = rt.predict(MODEL, list(sample.texts))
    assert rt.info(MODEL)["precision"] == "fp32"
    assert "int8 quantization refused: accuracy" in caplog.text and "tolerance 0.0100" in caplog.text
    assert [p.label for p in predictions] == list(sample.labels or ())  # fp32 answers, unchanged


def test_int8_refused_without_labelled_sample(
    make_runtime: type[ServingRuntime],
    publish: Publish,
    tokenizer: PreTrainedTokenizerFast,
    caplog: pytest.LogCaptureFixture,
) -> None:
    publish(tiny_classifier(tokenizer, seed=5))
    rt = make_runtime(quantize=True, dtype="fp32")
    with caplog.at_level(logging.WARNING, logger="gpt2_agent.serving"):
        rt.predict_one(MODEL, "100.00 CNY | app")
    assert rt.info(MODEL)["precision"] == "fp32"
    assert "int8 quantization refused: no labelled evaluation sample" in caplog.text


def test_bf16_forced_and_auto(
    make_runtime: type[ServingRuntime], publish: Publish, tokenizer: PreTrainedTokenizerFast
) -> None:
    model = tiny_classifier(tokenizer, seed=6, n_embd=64)
    publish(model)
    sample = labelled_sample(model, tokenizer, n=64)
    expected = reference_probabilities(model, tokenizer, list(sample.texts))
    forced = make_runtime(dtype="bf16")
    probs = torch.tensor(
        [[p.scores[x] for x in LABELS] for p in forced.predict(MODEL, list(sample.texts))],
        dtype=torch.float32,
    )
    assert forced.info(MODEL)["precision"] == "bf16"
    assert torch.allclose(probs, expected, atol=0.1)
    auto = make_runtime(dtype="auto", check_samples={MODEL: sample})
    auto.predict_one(MODEL, sample.texts[0])
    info = auto.info(MODEL)
    details = info["precision_info"]
    assert details["reason"]  # every choice says why
    if info["precision"] == "bf16":
        assert details["bf16_agreement"] >= 0.99 and details["bf16_batch_ms"] < details["fp32_batch_ms"]
    no_sample = make_runtime(dtype="auto")
    no_sample.predict_one(MODEL, sample.texts[0])
    assert no_sample.info(MODEL)["precision"] == "fp32"


def test_parse_sample_formats() -> None:
    as_object = parse_sample({"texts": ["a", "b"], "labels": [1, "reject"]}, LABELS, source="x")
    assert as_object.labels == ("approve", "reject")
    as_rows = parse_sample([{"text": "a", "label": "approve"}, {"text": "b", "label": 0}], LABELS, source="x")
    assert as_rows.texts == ("a", "b") and as_rows.labels == ("approve", "reject")
    unlabelled = parse_sample([{"text": "a"}], LABELS, source="x")
    assert unlabelled.labels is None
    with pytest.raises(ValueError, match="not among"):
        parse_sample({"texts": ["a"], "labels": ["maybe"]}, LABELS, source="x")
    with pytest.raises(ValueError):
        CheckSample.of(["a", "b"], ["approve"])


def test_a_pipeline_trained_version_carries_its_own_check_sample(
    make_runtime: type[ServingRuntime], registry: Registry, audit_model_dir: Path
) -> None:
    """The training pipeline stores held-out texts with a classifier, so a server that was given
    no check sample can still verify a cheaper precision (here int8, allowed any loss) before it
    uses it; without them it would serve fp32 only."""
    version = registry.register(audit_model_dir, MODEL, created_by="tests").version
    registry.promote(MODEL, version, by="tests")
    rt = make_runtime(quantize=True, quantize_tolerance=1.0, dtype="fp32")
    rt.predict(MODEL, ["99.00 CNY | web | 商品: 保温杯"])
    info = rt.info(MODEL)
    assert info["precision"] == "int8", info
    assert info["precision_info"]["sample"].endswith(EVAL_SAMPLE_FILE)
    assert info["precision_info"]["sample_size"] > 0
