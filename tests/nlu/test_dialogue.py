"""The dialogue against a real engine and database (SQLite file and PostgreSQL), with stand-in task types."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gpt2_agent.config import Settings
from gpt2_agent.engine.core import Engine
from gpt2_agent.engine.executors.local import LocalExecutor
from gpt2_agent.nlu.dialogue import DialogueManager, Routes, yes_or_no
from gpt2_agent.nlu.errors import ConversationNotFound, InvalidConversationId, InvalidText, TextTooLong
from gpt2_agent.store import Database, create_database
from tests.nlu import standins
from tests.nlu.stubs import keyword_parser


@pytest.fixture
def engine(database: Database, settings: Settings) -> Engine:
    eng = Engine(database, settings)
    standins.register(eng, settings)
    return eng


@pytest.fixture
def chat(settings: Settings, database: Database, engine: Engine) -> DialogueManager:
    return DialogueManager(settings, database, keyword_parser(), engine)


@pytest.fixture
def executor(engine: Engine) -> Iterator[LocalExecutor]:
    ex = LocalExecutor(engine)
    ex.start()
    yield ex
    ex.stop(wait=True)


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def say(chat: DialogueManager, conv: str | None, text: str, user: str = "alice", **kw: Any) -> dict[str, Any]:
    return chat.reply(conv, text, user, **kw)


def test_slot_filling_over_several_turns_then_confirmation(chat: DialogueManager, engine: Engine) -> None:
    first = say(chat, None, "我要付款")
    conv = first["conversation_id"]
    assert first["awaiting"] == "order_no" and first["lang"] == "zh"
    assert "订单号" in first["reply"] and not first["actions"]

    second = say(chat, conv, "66120")
    assert second["awaiting"] == "amount"
    assert "66120" in second["reply"]

    third = say(chat, conv, "４,５００元")  # full-width digits, a grouped amount, a currency word
    assert third["awaiting"] == "confirmation"
    assert "4500.00" in third["reply"] and "CNY" in third["reply"]
    assert engine.list_tasks().total == 0  # nothing moves before the yes

    done = say(chat, conv, "确认")
    assert done["awaiting"] is None
    [action] = done["actions"]
    assert action["type"] == "task" and action["url"] == f"/api/v1/tasks/{action['id']}"
    assert f"#{action['id']}" in done["reply"] and action["url"] in done["reply"]
    task = engine.get_task(action["id"])
    assert task.type == "order_payment"
    assert task.input == {"order_no": "66120", "amount": "4500.00", "currency": "CNY"}
    assert task.submitted_by == "alice"
    assert done["links"] == [{"href": action["url"], "label": f"任务 #{action['id']}"}]


def test_payment_is_never_made_without_a_yes(chat: DialogueManager, engine: Engine) -> None:
    ask = say(chat, None, "pay order 12345, 1000 yuan")
    conv = ask["conversation_id"]
    assert ask["awaiting"] == "confirmation"
    assert "1000.00 CNY" in ask["reply"] and "12345" in ask["reply"]
    unclear = say(chat, conv, "hmm")
    assert unclear["awaiting"] == "confirmation" and "yes or no" in unclear["reply"]
    declined = say(chat, conv, "no")
    assert declined["awaiting"] is None and not declined["actions"]
    assert "Nothing was paid" in declined["reply"]
    assert engine.list_tasks().total == 0


def test_correction_during_confirmation(chat: DialogueManager, engine: Engine) -> None:
    conv = say(chat, None, "pay order 12345, 1000 yuan")["conversation_id"]
    corrected = say(chat, conv, "no, order 12346")
    assert corrected["awaiting"] == "confirmation"
    assert "12346" in corrected["reply"] and "1000.00" in corrected["reply"]
    amount = say(chat, conv, "不对，金额是 800 元")
    assert amount["awaiting"] == "confirmation" and "800.00" in amount["reply"]
    done = say(chat, conv, "yes")
    task = engine.get_task(done["actions"][0]["id"])
    assert task.input == {"order_no": "12346", "amount": "800.00", "currency": "CNY"}
    assert engine.list_tasks().total == 1


def test_correction_after_an_action_redoes_it(chat: DialogueManager, engine: Engine) -> None:
    first = say(chat, None, "please audit order 12345")
    assert engine.get_task(first["actions"][0]["id"]).input == {"order_no": "12345"}
    second = say(chat, first["conversation_id"], "no, order 12346")
    assert engine.get_task(second["actions"][0]["id"]).input == {"order_no": "12346"}


def test_replies_in_the_users_language(chat: DialogueManager) -> None:
    en = say(chat, None, "please audit order 12345")
    assert en["lang"] == "en" and "Started the audit of order 12345" in en["reply"]
    zh = say(chat, None, "帮我审核一下订单 66120")
    assert zh["lang"] == "zh" and "已开始审核订单 66120" in zh["reply"]
    # Text without words keeps the conversation's language; a hint decides for a new one.
    conv = say(chat, None, "我要审核")["conversation_id"]
    assert say(chat, conv, "66120")["lang"] == "zh"
    assert say(chat, None, "12345", lang_hint="zh-CN")["lang"] == "zh"


def test_conversation_survives_a_restart(settings: Settings, engine: Engine, chat: DialogueManager) -> None:
    conv = say(chat, None, "I want to pay")["conversation_id"]
    assert say(chat, conv, "order 66120")["awaiting"] == "amount"
    # A new process: new database connection, new manager, same database.
    db2 = create_database(settings.database_url)
    try:
        restarted = DialogueManager(settings, db2, keyword_parser(), engine)
        ask = restarted.reply(conv, "300 dollars", "alice")
        assert ask["awaiting"] == "confirmation" and "66120" in ask["reply"] and "300.00 USD" in ask["reply"]
        done = restarted.reply(conv, "yes", "alice")
        assert engine.get_task(done["actions"][0]["id"]).input["order_no"] == "66120"
        turns = restarted.history(conv, "alice")
        assert [t["role"] for t in turns] == ["user", "agent"] * 4
        assert turns[-1]["actions"] == done["actions"]
    finally:
        db2.dispose()


def test_status_and_cancel_answer_from_the_engine(
    chat: DialogueManager, engine: Engine, executor: LocalExecutor
) -> None:
    started = say(chat, None, "please audit order 12345")
    conv, task_id = started["conversation_id"], started["actions"][0]["id"]
    wait_for(lambda: engine.get_task(task_id).status == "succeeded")
    status = say(chat, conv, f"what's the status of task {task_id}?")
    assert (
        f"Task #{task_id}" in status["reply"] and "done" in status["reply"] and "approve" in status["reply"]
    )
    assert status["actions"] == [{"type": "task", "id": task_id, "url": f"/api/v1/tasks/{task_id}"}]
    # "it" means the last thing this conversation touched.
    again = say(chat, conv, "status?")
    assert f"#{task_id}" in again["reply"]
    cancel = say(chat, conv, f"cancel task {task_id}")
    assert "already done" in cancel["reply"]


def test_status_of_a_payment_by_order_number(
    chat: DialogueManager, engine: Engine, executor: LocalExecutor
) -> None:
    conv = say(chat, None, "pay order 77410, 88.5 yuan")["conversation_id"]
    paid = say(chat, conv, "yes")["actions"][0]["id"]
    wait_for(lambda: engine.get_task(paid).status == "succeeded")
    answer = say(chat, None, "did the payment for 77410 go through?")
    assert f"#{paid}" in answer["reply"] and "paid 88.50 CNY" in answer["reply"]
    zh = say(chat, None, "订单 77410 付款成功了吗")
    assert "已支付 88.50 CNY" in zh["reply"]
    none = say(chat, None, "status of order 99999")
    assert "no task or run for order 99999" in none["reply"]


def test_cancel_a_queued_task(chat: DialogueManager, engine: Engine) -> None:
    task_id = engine.submit_task("send_email", {"to": ["a@example.com"], "subject": "s", "body": "b"}).id
    answer = say(chat, None, f"取消任务 {task_id}")
    assert engine.get_task(task_id).status == "cancelled"
    assert f"已取消任务 #{task_id}" in answer["reply"]
    missing = say(chat, None, "cancel task 999999")
    assert "can't find task #999999" in missing["reply"]


def test_missing_task_number_is_asked_for(chat: DialogueManager, engine: Engine) -> None:
    task_id = engine.submit_task("send_email", {"to": ["a@example.com"], "subject": "s", "body": "b"}).id
    ask = say(chat, None, "cancel it")
    assert ask["awaiting"] == "task_id"
    done = say(chat, ask["conversation_id"], str(task_id))
    assert engine.get_task(task_id).status == "cancelled" and done["awaiting"] is None


def test_email_and_upload(chat: DialogueManager, engine: Engine) -> None:
    ask = say(chat, None, "send an email please")
    assert ask["awaiting"] == "email"
    sent = say(chat, ask["conversation_id"], "to Li.Wei@Example.COM")
    task = engine.get_task(sent["actions"][0]["id"])
    assert task.type == "send_email" and task.input["to"] == ["Li.Wei@example.com"]
    upload = say(chat, None, "上传发票 invoice_66120.pdf")
    assert "invoice_66120.pdf" in upload["reply"] and not upload["actions"]


def test_a_new_request_replaces_an_unfinished_one(chat: DialogueManager, engine: Engine) -> None:
    conv = say(chat, None, "I want to pay")["conversation_id"]
    switched = say(chat, conv, "please audit order 55555")
    assert (
        switched["awaiting"] is None and engine.get_task(switched["actions"][0]["id"]).type == "order_audit"
    )
    dropped_conv = say(chat, None, "I want to pay")["conversation_id"]
    dropped = say(chat, dropped_conv, "never mind")
    assert dropped["awaiting"] is None and "dropped" in dropped["reply"]


def test_audit_starts_the_workflow_when_asked_to(
    settings: Settings, database: Database, engine: Engine
) -> None:
    chat = DialogueManager(
        settings, database, keyword_parser(), engine, routes=Routes(prefer_audit_workflow=True)
    )
    answer = chat.reply(None, "audit order 66120", "bob")
    [action] = answer["actions"]
    assert action["type"] == "run" and action["url"] == f"/api/v1/runs/{action['id']}"
    assert engine.get_run(action["id"]).input == {"order_no": "66120"}


def test_small_talk_and_bad_input(chat: DialogueManager) -> None:
    assert "audit orders" in say(chat, None, "hello")["reply"]
    assert "Try:" in say(chat, None, "help")["reply"]
    assert say(chat, None, "🙂🙂 \x00\u200b")["reply"].startswith(
        "Sorry"
    )  # emoji, controls: parsed, no error
    with pytest.raises(InvalidText) as empty:
        say(chat, None, " \t\n")
    assert empty.value.field == "text"
    with pytest.raises(TextTooLong):
        say(chat, None, "a" * 1001)
    with pytest.raises(InvalidConversationId):
        say(chat, "../etc/passwd", "hi")


def test_conversation_ids(chat: DialogueManager) -> None:
    chosen = say(chat, "web-1234abcd", "hello")
    assert chosen["conversation_id"] == "web-1234abcd"  # an unknown id starts a conversation under it
    with pytest.raises(ConversationNotFound):
        say(chat, "web-1234abcd", "hello", user="mallory")  # another user's id is not found
    with pytest.raises(ConversationNotFound):
        chat.history("web-1234abcd", "mallory")


@pytest.mark.parametrize(
    ("text", "answer"),
    [("yes", "yes"), ("Yes please!", "yes"), ("确认", "yes"), ("好的，付吧", "yes"), ("ok", "yes"),
     ("no", "no"), ("取消", "no"), ("算了", "no"), ("不要", "no"), ("never mind", "no"),
     ("maybe", None), ("12345", None)],
)  # fmt: skip
def test_yes_or_no(text: str, answer: str | None) -> None:
    assert yes_or_no(text) == answer
