"""The serving runtime against a real registry (SQLite file) and tiny real GPT-2 classifiers."""

from __future__ import annotations

import threading
import time
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
from transformers import PreTrainedTokenizerFast

from gpt2_agent.config import Settings
from gpt2_agent.registry import Registry
from gpt2_agent.serving import ModelNotReady, Prediction, ServedModel, ServingClosed, ServingRuntime


@pytest.fixture
def runtime(sqlite_settings: Settings, registry: Registry) -> Iterator[ServingRuntime]:
    rt = ServingRuntime(
        sqlite_settings, registry, dtype="fp32", max_wait_ms=20.0, reload_interval_s=0.05, threads=1
    )
    yield rt
    rt.close()


def _probs(predictions: list[Prediction]) -> torch.Tensor:
    return torch.tensor([[p.scores[label] for label in LABELS] for p in predictions])


def test_predict_equals_unbatched_reference(
    runtime: ServingRuntime, publish: Publish, tokenizer: PreTrainedTokenizerFast
) -> None:
    model = tiny_classifier(tokenizer, seed=1)
    version = publish(model)
    texts = [*order_texts(40, seed=5), "", "x", "y" * 500]  # empty, one token, truncated
    predictions = runtime.predict(MODEL, texts)
    expected = reference_probabilities(model, tokenizer, texts)
    assert torch.allclose(_probs(predictions), expected, atol=1e-5)
    for p, row in zip(predictions, expected, strict=True):
        assert p.model == MODEL and p.version == version
        assert p.label == LABELS[int(row.argmax())]
        assert p.probability == pytest.approx(float(row.max()), abs=1e-5)
    assert runtime.predict_one(MODEL, texts[0]).scores == pytest.approx(predictions[0].scores, abs=1e-6)
    assert runtime.loaded_version(MODEL) == version
    assert runtime.predict(MODEL, []) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_concurrent_requests_share_forward_passes(
    sqlite_settings: Settings,
    registry: Registry,
    publish: Publish,
    tokenizer: PreTrainedTokenizerFast,
    workers: int,
) -> None:
    runtime = ServingRuntime(
        sqlite_settings,
        registry,
        dtype="fp32",
        max_wait_ms=20.0,
        reload_interval_s=0,
        threads=1,
        workers=workers,
    )
    model = tiny_classifier(tokenizer, seed=2)
    publish(model)
    runtime.predict_one(MODEL, "warm up")  # load outside the timed part
    calls: list[int] = []
    served = runtime.served(MODEL)
    hook = served.model.transformer.wte.register_forward_hook(lambda mod, args, out: calls.append(len(out)))
    texts = order_texts(64, seed=3)
    results: dict[int, Prediction] = {}
    barrier = threading.Barrier(len(texts))

    def client(i: int) -> None:
        barrier.wait()
        results[i] = runtime.predict_one(MODEL, texts[i])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    hook.remove()
    assert len(results) == len(texts)
    assert sum(calls) == len(texts)  # every text computed exactly once...
    assert len(calls) <= len(texts) // 4  # ...in far fewer forward passes than requests
    assert max(calls) <= runtime.max_batch_size
    expected = reference_probabilities(model, tokenizer, texts)
    assert torch.allclose(_probs([results[i] for i in range(len(texts))]), expected, atol=1e-5)
    stats = runtime.info(MODEL)["batching"]
    assert stats["forward_passes"] >= len(calls) and stats["mean_pass_size"] > 1
    runtime.close()


def test_model_not_ready_names_the_training_command(
    sqlite_settings: Settings, registry: Registry, publish: Publish, tokenizer: PreTrainedTokenizerFast
) -> None:
    hint = "gpt2-agent train configs/order-audit.tiny.toml"
    with ServingRuntime(sqlite_settings, registry, train_hints={MODEL: hint}, dtype="fp32", threads=1) as rt:
        with pytest.raises(ModelNotReady) as info:
            rt.predict_one(MODEL, "anything")
        assert hint in str(info.value) and MODEL in str(info.value)
        assert info.value.model == MODEL and info.value.hint == hint
        with pytest.raises(ModelNotReady, match="gpt2-agent train"):
            rt.predict_one("other-model", "anything")  # generic hint
        version = publish(tiny_classifier(tokenizer, seed=3), promote=False)
        with pytest.raises(ModelNotReady):  # registered but not promoted
            rt.predict_one(MODEL, "anything")
        assert rt.reload(MODEL) is None
        registry.promote(MODEL, version, by="test", force=True)
        assert rt.predict_one(MODEL, "now it works").version == version


def test_closed_runtime_refuses(
    runtime: ServingRuntime, publish: Publish, tokenizer: PreTrainedTokenizerFast
) -> None:
    publish(tiny_classifier(tokenizer, seed=4))
    runtime.predict_one(MODEL, "before")
    runtime.close()
    with pytest.raises(ServingClosed):
        runtime.predict_one(MODEL, "after")


def test_run_hook_and_type_checks(
    runtime: ServingRuntime, publish: Publish, tokenizer: PreTrainedTokenizerFast
) -> None:
    version = publish(tiny_classifier(tokenizer, seed=5))

    def fn(served: ServedModel) -> tuple[int, bool]:
        return served.version, torch.is_inference_mode_enabled()

    assert runtime.run(MODEL, fn) == (version, True)
    with pytest.raises(TypeError):
        runtime.predict(MODEL, "a string, not a list")
    info = runtime.info(MODEL)
    assert info["version"] == version and info["precision"] == "fp32" and info["labels"] == list(LABELS)


def test_hot_reload_under_concurrent_requests(
    settings: Settings, database: object, tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    """v1 → v2 while 8 threads keep predicting: no error, every answer matches the version it names."""
    registry = Registry(settings, database)  # type: ignore[arg-type]
    v1_model, v2_model = tiny_classifier(tokenizer, seed=10), tiny_classifier(tokenizer, seed=11)
    texts = order_texts(24, seed=7)
    expected = {
        1: reference_probabilities(v1_model, tokenizer, texts),
        2: reference_probabilities(v2_model, tokenizer, texts),
    }
    assert not torch.allclose(expected[1], expected[2], atol=1e-2)  # the versions are told apart
    publish_model(registry, tmp_path / "v1", v1_model, tokenizer)
    rt = ServingRuntime(
        settings, registry, dtype="fp32", max_wait_ms=2.0, reload_interval_s=0.05, threads=1, workers=2
    )
    rt.predict_one(MODEL, texts[0])
    errors: list[BaseException] = []
    seen: list[list[int]] = [[] for _ in range(8)]
    stop = threading.Event()

    def client(k: int) -> None:
        i = k
        while not stop.is_set():
            try:
                batch = [texts[(i + j) % len(texts)] for j in range(1 + k % 3)]
                predictions = rt.predict(MODEL, batch)
                versions = {p.version for p in predictions}
                assert len(versions) == 1, f"one call, mixed versions {versions}"
                version = versions.pop()
                for j, p in enumerate(predictions):
                    want = expected[version][(i + j) % len(texts)]
                    got = torch.tensor([p.scores[label] for label in LABELS])
                    assert torch.allclose(got, want, atol=1e-5), (
                        f"v{version} answer does not match v{version}"
                    )
                seen[k].append(version)
            except BaseException as exc:
                errors.append(exc)
                return
            i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        publish_model(registry, tmp_path / "v2", v2_model, tokenizer)
        deadline = time.monotonic() + 30
        while rt.loaded_version(MODEL) != 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
        rt.close()
    assert not errors, errors[:3]
    assert rt.loaded_version(MODEL) == 2
    for versions in seen:
        assert versions and versions[-1] == 2
        assert versions == sorted(versions), "a client went back to the old version after the swap"
    assert any(1 in versions for versions in seen)
