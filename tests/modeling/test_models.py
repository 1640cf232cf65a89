"""Tiny GPT-2 models of every task: build, save/load round trip, init from a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import GPT2ForSequenceClassification, GPT2LMHeadModel

from gpt2_agent.modeling import (
    GPT2ForJointNLU,
    ModelLoadError,
    ModelSpec,
    build_model,
    copy_backbone,
    load_model,
    task_of,
)

VOCAB, PAD, EOS = 97, 0, 1
TINY = {"n_layer": 2, "n_embd": 32, "n_head": 4, "context": 32, "vocab_size": VOCAB}
LABELS = {
    "sequence_classification": (["approve", "reject"], []),
    "token_classification": (["O", "B-order_no", "I-order_no"], []),
    "causal_lm": ([], []),
    "joint_nlu": (["order_audit", "greet", "help"], ["O", "B-amount", "I-amount"]),
}


def _model(task: str, **extra: object) -> torch.nn.Module:
    torch.manual_seed(0)
    labels, slots = LABELS[task]
    spec = ModelSpec(task=task, **{**TINY, **extra})  # type: ignore[arg-type]
    return build_model(
        spec, vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=EOS, labels=labels, slot_labels=slots
    )


def _logits(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    model.eval()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask)
    if isinstance(model, GPT2ForJointNLU):
        return [out.intent_logits, out.slot_logits]
    return [out.logits]


@pytest.mark.parametrize("task", list(LABELS))
def test_save_load_round_trip(task: str, tmp_path: Path) -> None:
    model = _model(task)
    assert task_of(model) == task
    ids = torch.randint(2, VOCAB, (3, 10))
    mask = torch.ones_like(ids)
    ids[0, 7:], mask[0, 7:] = PAD, 0
    before = _logits(model, ids, mask)
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model)
    for a, b in zip(before, _logits(loaded, ids, mask), strict=True):
        torch.testing.assert_close(a, b)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["activation_function"] == "gelu_pytorch_tanh"
    assert config["attn_pdrop"] == 0.0 and config["pad_token_id"] == PAD


def test_joint_model_heads_file_and_labels(tmp_path: Path) -> None:
    model = _model("joint_nlu")
    model.save_pretrained(tmp_path / "nlu")
    heads = json.loads((tmp_path / "nlu" / "heads.json").read_text())
    assert heads["intent_labels"] == ["order_audit", "greet", "help"]
    assert heads["slot_labels"] == ["O", "B-amount", "I-amount"]
    loaded = GPT2ForJointNLU.from_pretrained(tmp_path / "nlu")
    assert loaded.num_intents == 3 and loaded.num_slot_labels == 3


def test_joint_model_trains_both_heads() -> None:
    model = _model("joint_nlu")
    ids = torch.randint(2, VOCAB, (4, 8))
    intents = torch.tensor([0, 1, 2, 0])
    slots = torch.randint(0, 3, (4, 8))
    slots[:, -2:] = -100
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), intent_labels=intents, slot_labels=slots)
    out.loss.backward()
    assert model.intent_head.weight.grad is not None and model.slot_head.weight.grad is not None
    assert model.transformer.h[0].attn.c_attn.weight.grad is not None


@pytest.mark.parametrize("task", ["sequence_classification", "joint_nlu"])
def test_classifier_reads_last_real_token_not_padding(task: str) -> None:
    model = _model(task)
    ids = torch.randint(2, VOCAB, (1, 6))
    padded = torch.cat([ids, torch.full((1, 4), PAD)], dim=1)
    mask = torch.cat([torch.ones(1, 6, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long)], dim=1)
    short = _logits(model, ids, torch.ones_like(ids))[0]
    long = _logits(model, padded, mask)[0]
    torch.testing.assert_close(short, long, atol=1e-5, rtol=1e-4)


def test_init_from_lm_copies_backbone(tmp_path: Path) -> None:
    lm = _model("causal_lm")
    assert isinstance(lm, GPT2LMHeadModel)
    with torch.no_grad():  # make the LM's weights distinguishable from any fresh init
        for p in lm.transformer.parameters():
            p.add_(0.5)
    lm.save_pretrained(tmp_path / "lm")
    clf = _model("sequence_classification", init_from=str(tmp_path / "lm"))
    assert isinstance(clf, GPT2ForSequenceClassification)
    lm_state, clf_state = lm.state_dict(), clf.state_dict()
    backbone = [k for k in lm_state if k.startswith("transformer.")]
    assert backbone
    for key in backbone:
        torch.testing.assert_close(lm_state[key], clf_state[key], msg=key)
    assert clf.config.num_labels == 2 and clf.config.pad_token_id == PAD
    nlu = _model("joint_nlu", init_from=str(tmp_path / "lm"))
    torch.testing.assert_close(nlu.transformer.wte.weight, lm.transformer.wte.weight)


def test_copy_backbone_between_tasks() -> None:
    lm, tagger = _model("causal_lm"), _model("token_classification")
    copied = copy_backbone(lm, tagger)
    assert "transformer.wte.weight" in copied
    torch.testing.assert_close(tagger.transformer.h[1].mlp.c_fc.weight, lm.transformer.h[1].mlp.c_fc.weight)


def test_init_from_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        _model("sequence_classification", init_from=str(tmp_path / "nowhere"))


def test_spec_rejects_bad_head_count() -> None:
    with pytest.raises(ValueError, match="n_embd=30, n_head=4"):
        ModelSpec(n_embd=30, n_head=4)


def test_classifier_needs_labels() -> None:
    with pytest.raises(ValueError, match="labels"):
        build_model(ModelSpec(task="sequence_classification", **TINY), pad_token_id=PAD)  # type: ignore[arg-type]
