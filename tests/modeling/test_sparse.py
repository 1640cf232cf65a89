"""N-gram features of the NLU intent head: scikit-learn's TF-IDF weights, stored as JSON, and a
joint model that reads them, trains both branches and survives a save/load round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_union

from gpt2_agent.modeling import (
    SPARSE_FEATURES_FILE,
    GPT2ForJointNLU,
    ModelSpec,
    NgramFeaturizer,
    build_model,
    load_model,
)

TEXTS = [
    "please audit order 66120",
    "pay order 12345, 1000 yuan",
    "did the payment for 77410 go through?",
    "帮我审核一下订单 66120",
    "帮我付款 订单 12345",
    "hello there",
    "hello, what can you do?",
    "audit order 66120 please",
    "Pay the ORDER now",
]
INTENTS = ["order_audit", "order_payment", "greet"]
SLOTS = ["O", "B-order_no"]
VOCAB, PAD, EOS = 97, 0, 1


def test_weights_match_scikit_learn() -> None:
    featurizer = NgramFeaturizer.fit(TEXTS)
    reference = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
    )
    matrix = reference.fit_transform(TEXTS)
    assert featurizer.size == matrix.shape[1]
    unseen = ["audit the order 99999 pls", "订单 12345 付款了吗", "😀 hello\x07 order"]
    dense = reference.transform(unseen).toarray()
    for row, text in zip(dense, unseen, strict=True):
        ids, weights = featurizer.transform_one(text)
        assert all(i >= 1 for i in ids)  # 0 is padding
        np.testing.assert_allclose(sorted(weights), sorted(row[row > 0]), atol=1e-9)


def test_round_trip_and_padding(tmp_path: Path) -> None:
    featurizer = NgramFeaturizer.fit(TEXTS)
    featurizer.save(tmp_path)
    data = json.loads((tmp_path / SPARSE_FEATURES_FILE).read_text(encoding="utf-8"))
    assert data["format_version"] == 1 and len(data["terms"]) == featurizer.size
    loaded = NgramFeaturizer.load(tmp_path)
    assert loaded.transform_one(TEXTS[3]) == featurizer.transform_one(TEXTS[3])
    batch = loaded.tensors(["hello", "", "completely unseen zzzz"])
    assert batch["sparse_ids"].shape == batch["sparse_weights"].shape
    assert batch["sparse_ids"][1].sum() == 0 and batch["sparse_weights"][1].sum() == 0  # empty text


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no texts"):
        NgramFeaturizer.fit([])
    with pytest.raises(FileNotFoundError, match=SPARSE_FEATURES_FILE):
        NgramFeaturizer.load(tmp_path)
    with pytest.raises(ValueError, match="sparse_ngrams is for task 'joint_nlu'"):
        ModelSpec(task="sequence_classification", sparse_ngrams=True)


def _model(featurizer: NgramFeaturizer) -> GPT2ForJointNLU:
    torch.manual_seed(0)
    spec = ModelSpec(task="joint_nlu", n_layer=1, n_embd=32, n_head=4, context=32, vocab_size=VOCAB)
    model = build_model(
        spec,
        vocab_size=VOCAB,
        pad_token_id=PAD,
        eos_token_id=EOS,
        labels=INTENTS,
        slot_labels=SLOTS,
        featurizer=featurizer,
    )
    assert isinstance(model, GPT2ForJointNLU)
    return model


def test_joint_model_reads_ngrams_and_round_trips(tmp_path: Path) -> None:
    featurizer = NgramFeaturizer.fit(TEXTS)
    model = _model(featurizer)
    assert model.sparse_head is not None and model.sparse_head.weight.abs().sum() == 0
    texts = TEXTS[:4]
    ids = torch.randint(2, VOCAB, (4, 6))
    sparse = featurizer.tensors(texts)
    out = model(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        intent_labels=torch.tensor([0, 1, 2, 0]),
        slot_labels=torch.zeros_like(ids),
        **sparse,
    )
    out.loss.backward()
    assert model.sparse_head.weight.grad is not None and model.sparse_head.weight.grad.abs().sum() > 0
    assert model.intent_head.weight.grad is not None
    with torch.no_grad():
        model.sparse_head.weight.normal_()  # give the layer an opinion to compare after loading
    model.eval()
    before = model(input_ids=ids, **sparse).intent_logits
    model.save_pretrained(tmp_path / "nlu")
    assert (tmp_path / "nlu" / SPARSE_FEATURES_FILE).is_file()
    loaded = load_model(tmp_path / "nlu")
    assert isinstance(loaded, GPT2ForJointNLU) and loaded.featurizer is not None
    again = loaded(input_ids=ids, **loaded.featurizer.tensors(texts)).intent_logits
    torch.testing.assert_close(before, again)
    with pytest.raises(ValueError, match="reads n-gram features"):
        loaded(input_ids=ids)


def test_featurizer_must_match_the_layer() -> None:
    model = _model(NgramFeaturizer.fit(TEXTS))
    with pytest.raises(ValueError, match="n-grams but the model's layer"):
        model.attach_featurizer(NgramFeaturizer.fit(TEXTS[:3]))


def test_a_new_version_starts_from_an_older_one(tmp_path: Path) -> None:
    old = _model(NgramFeaturizer.fit(TEXTS[:5]))
    old.save_pretrained(tmp_path / "v1")
    new_featurizer = NgramFeaturizer.fit(TEXTS)
    spec = ModelSpec(task="joint_nlu", init_from=str(tmp_path / "v1"))
    model = build_model(spec, pad_token_id=PAD, labels=INTENTS, slot_labels=SLOTS, featurizer=new_featurizer)
    assert isinstance(model, GPT2ForJointNLU)
    assert model.featurizer is new_featurizer and model.sparse_size == new_featurizer.size
    assert model.sparse_head is not None and model.sparse_head.weight.abs().sum() == 0
    torch.testing.assert_close(model.transformer.wte.weight, old.transformer.wte.weight)
