"""NluService over the registry: not ready, serving the production version, hot reload, bad input,
concurrency; and the dialogue end to end on the real (tiny) model."""

from __future__ import annotations

import concurrent.futures

import pytest

from gpt2_agent.config import Settings
from gpt2_agent.engine.core import Engine
from gpt2_agent.nlu.dialogue import DialogueManager
from gpt2_agent.nlu.errors import InvalidText, NluModelNotReady, TextTooLong
from gpt2_agent.nlu.service import NluService
from gpt2_agent.nlu.train import NluTrainResult
from gpt2_agent.registry import Registry
from gpt2_agent.serving.errors import ModelNotReady
from gpt2_agent.store import Database
from tests.nlu import standins


@pytest.fixture
def registry(settings: Settings, database: Database) -> Registry:
    return Registry(settings, database)


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"nlu_reload_interval_seconds": 0.0})


def test_not_ready_until_a_version_is_in_production(
    fast_settings: Settings, database: Database, registry: Registry, tiny_nlu: NluTrainResult
) -> None:
    service = NluService(fast_settings, database, registry)
    assert service.warm() is False and service.status()["version"] is None
    with pytest.raises(NluModelNotReady) as err:
        service.parse("hello")
    assert isinstance(err.value, ModelNotReady) and "gpt2-agent train configs/nlu.toml" in str(err.value)
    v1 = registry.register(tiny_nlu.model_dir, "nlu", task="nlu").version
    with pytest.raises(NluModelNotReady):
        service.parse("hello")  # registered, not promoted
    registry.set_alias("nlu", "production", v1, by="test")
    assert service.warm() is True and service.status()["version"] == v1
    parse = service.parse("帮我审核一下订单 66120")
    assert parse["model"] == {"name": "nlu", "version": v1}
    assert {k: parse["entities"][0][k] for k in ("entity", "value", "start", "end")} == {
        "entity": "order_no",
        "value": "66120",
        "start": 9,
        "end": 14,
    }
    assert parse["intent_ranking"][0]["name"] == parse["intent"]["name"] or "fallback_from" in parse["intent"]
    # A new production version is picked up without a restart.
    v2 = registry.register(tiny_nlu.model_dir, "nlu", task="nlu").version
    registry.set_alias("nlu", "production", v2, by="test")
    assert service.parse("hello")["model"]["version"] == v2
    service.close()


def test_bad_input_and_concurrency(
    fast_settings: Settings, database: Database, registry: Registry, tiny_nlu: NluTrainResult
) -> None:
    version = registry.register(tiny_nlu.model_dir, "nlu", task="nlu").version
    registry.set_alias("nlu", "production", version, by="test")
    service = NluService(fast_settings, database, registry)
    with pytest.raises(InvalidText) as empty:
        service.parse("   \n\t")
    assert empty.value.field == "text"
    with pytest.raises(TextTooLong) as long:
        service.parse("x" * (fast_settings.nlu_max_text_chars + 1))
    assert long.value.limit == fast_settings.nlu_max_text_chars
    texts = [f"pay order {10000 + i}, {i + 1} yuan" for i in range(64)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        parses = list(pool.map(service.parse, texts))
    for i, parse in enumerate(parses):
        values = {e["entity"]: e["value"] for e in parse["entities"]}
        assert values == {"order_no": str(10000 + i), "amount": f"{i + 1}.00", "currency": "CNY"}
    service.close()


def test_dialogue_on_the_real_model(
    fast_settings: Settings, database: Database, registry: Registry, tiny_nlu: NluTrainResult
) -> None:
    version = registry.register(tiny_nlu.model_dir, "nlu", task="nlu").version
    registry.set_alias("nlu", "production", version, by="test")
    engine = Engine(database, fast_settings)
    standins.register(engine, fast_settings)
    service = NluService(fast_settings, database, registry)
    chat = DialogueManager(fast_settings, database, service, engine)
    ask = chat.reply(None, "支付订单 66120，金额 4,500 元", "alice")
    assert ask["awaiting"] == "confirmation" and ask["intent"]["name"] == "order_payment"
    assert engine.list_tasks().total == 0
    done = chat.reply(ask["conversation_id"], "确认", "alice")
    task = engine.get_task(done["actions"][0]["id"])
    assert task.input == {"order_no": "66120", "amount": "4500.00", "currency": "CNY"}
    service.close()


def test_train_nlu_registers_and_promotes_on_the_eval_set(settings: Settings, database: Database) -> None:
    from gpt2_agent.nlu.train import train_nlu
    from tests.conftest import NLU_TINY_CONFIG as TINY_CONFIG

    quick = ["train.max_steps=3", "nlu.generate_scale=0.03", "tokenizer.vocab_size=400"]
    first = train_nlu(TINY_CONFIG, settings, quick, progress=False, db=database, resume=False)
    assert first.registered_version == 1 and first.promoted is True
    registry = Registry(settings, database)
    version = registry.get_version("nlu", 1)
    assert version.eval_set_hash
    assert "intent_accuracy" in version.metrics and "fresh_slot_f1" in version.metrics
    assert registry.get_model("nlu").metric == "intent_accuracy"
    assert set(registry.get_model("nlu").aliases) == {"candidate", "production"}
    again = [*quick, "train.seed=1"]
    second = train_nlu(TINY_CONFIG, settings, again, progress=False, db=database, resume=False)
    assert second.registered_version == 2 and second.promoted is not None and second.promotion_note
