"""Fixtures for the serving tests: a tiny byte-level BPE tokenizer, tiny GPT-2 classifiers, a registry."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast

from gpt2_agent.config import Settings, load_settings
from gpt2_agent.registry import Registry
from gpt2_agent.store import Database, create_database, upgrade

MODEL = "order-audit"
LABELS = ("reject", "approve")
EOS, PAD = "<|endoftext|>", "[PAD]"

_CHANNELS = ("web", "app", "wechat", "phone")
_ITEMS = ("手机壳 x2", "保温杯", "gift card x5", "USB cable", "running shoes", "礼品卡 x3", "desk lamp")
_NOTES = ("", "please deliver after 6pm", "急", "gift wrap", "leave at the door, call first", "")


def order_text(rng: random.Random) -> str:
    """A synthetic serialized order (varied length, Chinese and English, like the audit template)."""
    items = ", ".join(rng.sample(_ITEMS, rng.randint(1, 4)))
    return (
        f"{rng.randint(5, 9000)}.{rng.randint(0, 99):02d} CNY | {rng.choice(_CHANNELS)} | "
        f"历史 {rng.randint(0, 40)} 单 | 倍数 {rng.random() * 9:.1f} | 账龄 {rng.randint(0, 900)} 天 | "
        f"商品: {items} | 备注: {rng.choice(_NOTES)}"
    )


def order_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [order_text(rng) for _ in range(n)]


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and a busy CI machine makes more threads spin-wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """A small byte-level BPE trained on a few order texts, with a pad token."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(order_texts(200, seed=99), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=EOS, pad_token=PAD, model_max_length=64
    )


def tiny_classifier(
    tokenizer: PreTrainedTokenizerFast, seed: int, *, n_embd: int = 32, head_scale: float = 30.0
) -> GPT2ForSequenceClassification:
    """A 2-layer GPT-2 classifier; ``head_scale`` makes its decisions clear rather than near-ties."""
    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=2,
        n_embd=n_embd,
        n_head=2,
        n_positions=64,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        activation_function="gelu_new",  # the original GPT-2 default; serving swaps in the fused one
        id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)},
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = GPT2ForSequenceClassification(config).eval()
    with torch.no_grad():
        model.score.weight.mul_(head_scale)
    return model


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'serving.db'}")


@pytest.fixture
def registry(sqlite_settings: Settings) -> Iterator[Registry]:
    db: Database = create_database(sqlite_settings.database_url)
    upgrade(db)
    yield Registry(sqlite_settings, db)
    db.dispose()


Publish = Callable[..., int]


def publish_model(
    registry: Registry,
    folder: Path,
    model: GPT2ForSequenceClassification,
    tokenizer: PreTrainedTokenizerFast,
    *,
    name: str = MODEL,
    promote: bool = True,
) -> int:
    """Save ``model`` + ``tokenizer`` to ``folder``, register it, and (by default) make it production."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    version = registry.register(folder, name, created_by="test").version
    if promote:
        registry.promote(name, version, by="test", force=True)
    return version


@pytest.fixture
def publish(registry: Registry, tokenizer: PreTrainedTokenizerFast, tmp_path: Path) -> Publish:
    """``publish(model, promote=True, name=MODEL) -> version``."""
    counter = iter(range(1000))

    def _publish(model: GPT2ForSequenceClassification, **kwargs: object) -> int:
        return publish_model(registry, tmp_path / f"out-{next(counter)}", model, tokenizer, **kwargs)  # type: ignore[arg-type]

    return _publish


def reference_probabilities(
    model: GPT2ForSequenceClassification, tokenizer: PreTrainedTokenizerFast, texts: list[str]
) -> torch.Tensor:
    """fp32, one text at a time, no padding, through the plain ``transformers`` forward: the truth."""
    out = []
    with torch.inference_mode():
        for text in texts:
            ids = tokenizer(text, truncation=True, max_length=64, add_special_tokens=False)["input_ids"]
            ids = ids or [tokenizer.eos_token_id]
            ids_tensor = torch.tensor([ids])
            logits = model(input_ids=ids_tensor, attention_mask=torch.ones_like(ids_tensor)).logits
            out.append(torch.softmax(logits.float(), -1)[0])
    return torch.stack(out)
