"""Multi-turn dialogue: intents become tasks and runs, missing slots are asked for one at a time.

``DialogueManager.reply`` reads the conversation's state from SQL, parses the text, decides, acts
through the engine, and saves the new state and both turns in one transaction, so a restarted
server continues the same conversation. What it does per intent:

=============== =====================================================================================
order_audit     needs ``order_no``; submits an ``order_audit`` task (or starts the ``order-fulfillment``
                run when only the workflow is installed)
order_payment   needs ``order_no`` and ``amount`` (``currency`` defaults to CNY); asks "charge X for
                order Y?" and only a yes submits the ``order_payment`` task; a no drops it; new
                values in the answer ("no, order 12346") correct the slots and ask again
task_status     the task (``task_id``), the latest task or run of ``order_no``, or the last thing this
                conversation started; answers from the engine
cancel_task     cancels the named task (its whole run if it belongs to one), the latest running work
                of ``order_no``, or the last thing this conversation started
send_email      needs ``email``; submits a ``send_email`` task
upload_file     needs ``file_name``; explains where to upload (a chat message carries no file)
greet, help,    answers with what the agent can do
out_of_scope
=============== =====================================================================================

Replies are in the language of the message (any Chinese → Chinese; text without words such as
"66120" or "ok" keeps the conversation's language, or ``lang_hint``). Every reply that started or
touched work lists it in ``actions`` (``{"type": "task"|"run", "id", "url"}``) and links it in the text.

Conversation ids: an unknown id starts a new conversation under that id (clients may choose
ids); ``None`` makes the server choose one; an id of another user is "not found" (404).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gpt2_agent.config import Settings
from gpt2_agent.nlu.conversations import (
    ConversationStore,
    check_conversation_id,
    new_conversation_id,
)
from gpt2_agent.nlu.replies import DECISIONS, DETAILS, KIND, STATES, say, word
from gpt2_agent.nlu.service import check_text
from gpt2_agent.nlu.text import detect_lang, normalize
from gpt2_agent.store import Database

logger = logging.getLogger(__name__)

API = "/api/v1"
DEFAULT_CURRENCY = "CNY"
CONFIRMATION = "confirmation"
TASK_INTENTS = ("order_audit", "order_payment", "task_status", "send_email", "upload_file", "cancel_task")
SMALL_TALK = ("greet", "help", "out_of_scope")
TERMINAL = {"succeeded", "failed", "cancelled", "rejected"}
RECENT_LIMIT = 200  # how many recent tasks/runs to search for an order number

_PUNCT = re.compile(r"[\s,.!?;:~，。！？；：、～…'\"“”‘’()（）\[\]]+")
_YES = {
    "yes", "y", "yeah", "yep", "yup", "ok", "okay", "k", "sure", "confirm", "confirmed", "go", "go ahead",
    "do it", "correct", "right", "please do", "yes please", "pay", "proceed", "continue", "approve",
    "确认", "确定", "是", "是的", "好", "好的", "对", "对的", "可以", "行", "没问题", "嗯", "嗯嗯",
    "同意", "付吧",
    "付款吧", "确认支付", "确认付款", "继续", "支付", "付", "好吧", "ok的", "确认无误",
}  # fmt: skip
_NO = {
    "no", "n", "nope", "nah", "cancel", "stop", "dont", "don't", "do not", "abort", "never mind", "nevermind",
    "forget it", "wrong", "not", "no thanks", "取消", "不", "不要", "不用", "算了", "不是", "否", "别",
    "停", "不对",
    "不行", "放弃", "错了", "不付", "别付", "先不", "先不要", "不了",
}  # fmt: skip
_NO_PREFIX = re.compile(r"^\s*(no|nope|not|wrong|不对|不是|错了|不|no,)[\s,，:：]*", re.IGNORECASE)
_RUN_WORDS = re.compile(r"\b(run|workflow|flow)\b|流程|运行", re.IGNORECASE)
_PAYMENT_WORDS = re.compile(r"pa(y|id|yment)|charge|付|支付|扣款|到账", re.IGNORECASE)
_AUDIT_WORDS = re.compile(r"audit|review|approv|审", re.IGNORECASE)


class EngineLike(Protocol):
    """The part of :class:`gpt2_agent.engine.core.Engine` the dialogue uses."""

    handlers: Any
    workflows: Any

    def submit_task(self, type_: str, input_: Any, **kwargs: Any) -> Any: ...

    def start_run(self, workflow: str, input_: Any, **kwargs: Any) -> Any: ...

    def get_task(self, task_id: int) -> Any: ...

    def get_run(self, run_id: int) -> Any: ...

    def list_tasks(self, **kwargs: Any) -> Any: ...

    def list_runs(self, **kwargs: Any) -> Any: ...

    def cancel_task(self, task_id: int, *, by: str | None) -> Any: ...

    def cancel_run(self, run_id: int, *, by: str | None) -> Any: ...


class Parser(Protocol):
    def parse(self, text: str, *, expected: str | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Form:
    """An intent that needs slots before it can act."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    confirm: bool = False

    @property
    def slots(self) -> tuple[str, ...]:
        return self.required + self.optional


FORMS: dict[str, Form] = {
    "order_audit": Form(("order_no",)),
    "order_payment": Form(("order_no", "amount"), ("currency",), confirm=True),
    "send_email": Form(("email",), ("order_no",)),
    "upload_file": Form(("file_name",), ("order_no",)),
    # These two act on their own when nothing is given; the slot is asked for only as a last resort.
    "task_status": Form(("task_id",), ("order_no",)),
    "cancel_task": Form(("task_id",), ("order_no",)),
}


@dataclass(frozen=True)
class Routes:
    """Task types and workflows the intents start (known by name only)."""

    audit_task: str = "order_audit"
    audit_workflow: str = "order-fulfillment"
    payment_task: str = "order_payment"
    email_task: str = "send_email"
    prefer_audit_workflow: bool = False  # True: "audit order X" starts the whole fulfilment run


def yes_or_no(text: str) -> str | None:
    """``"yes"``, ``"no"`` or None for an answer to a yes/no question (English or Chinese)."""
    words = _PUNCT.sub(" ", normalize(text).lower()).strip()
    if not words:
        return None
    if words in _YES:
        return "yes"
    if words in _NO:
        return "no"
    first = words.split(" ")[0]
    if first in _YES and len(words.split(" ")) <= 3:
        return "yes"
    if first in _NO or any(words.startswith(w) for w in ("不", "取消", "算了", "别")):
        return "no"
    if any(words.startswith(w) for w in ("确认", "确定", "好的", "可以", "没问题")):
        return "yes"
    return None


def _link(kind: str, ident: int) -> dict[str, Any]:
    path = "tasks" if kind == "task" else "runs"
    return {"type": kind, "id": ident, "url": f"{API}/{path}/{ident}"}


@dataclass
class _Turn:
    """Working state of one reply."""

    text: str
    user: str
    lang: str
    parse: dict[str, Any]
    state: dict[str, Any]
    key: str  # idempotency key prefix of this turn
    messages: list[str] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def intent(self) -> str:
        return str(self.parse["intent"]["name"])

    @property
    def confidence(self) -> float:
        return float(self.parse["intent"]["confidence"])

    def entities(self) -> dict[str, str]:
        """First value of each entity type in the text."""
        out: dict[str, str] = {}
        for ent in self.parse.get("entities") or []:
            out.setdefault(str(ent["entity"]), str(ent["value"]))
        return out

    def say(self, key: str, **values: Any) -> None:
        self.messages.append(say(key, self.lang, **values))


class DialogueManager:
    """Turns chat messages into work. Thread-safe; one per process (several processes may share a DB).

    :param settings: ``nlu_max_text_chars`` bounds a message.
    :param db: where conversations live (``conversations``, ``conversation_turns``).
    :param nlu: an :class:`~gpt2_agent.nlu.service.NluService` (anything with ``parse(text, expected=)``).
    :param engine: the engine that tasks and runs are submitted to.
    :param routes: which task types and workflows the intents use.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        nlu: Parser,
        engine: EngineLike,
        *,
        routes: Routes | None = None,
    ) -> None:
        self.settings = settings
        self.nlu = nlu
        self.engine = engine
        self.routes = routes or Routes()
        self.store = ConversationStore(db)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # --- public ---------------------------------------------------------------------------------

    def reply(
        self, conversation_id: str | None, text: str, user: str, lang_hint: str | None = None
    ) -> dict[str, Any]:
        """Answer one message; see the module docstring.

        :returns: ``{"conversation_id", "reply", "lang", "intent", "entities", "actions",
            "awaiting", "links"}``; ``awaiting`` is the slot asked for, ``"confirmation"`` or None.
        :raises InvalidText: empty text. :raises TextTooLong: too long.
        :raises InvalidConversationId: malformed id. :raises ConversationNotFound: another user's id.
        :raises ConversationBusy: a concurrent reply to the same conversation was saved first.
        :raises NluModelNotReady: no NLU model is served.
        """
        check_text(text, self.settings.nlu_max_text_chars)
        cid = check_conversation_id(conversation_id) or new_conversation_id()
        with self._lock_for(cid):
            snap = self.store.load(cid, user)
            state = _fresh_state(snap.state)
            lang = detect_lang(text) or _lang(lang_hint) or snap.lang or "en"
            form = state.get("form") or {}
            awaiting = form.get("awaiting")
            expected = awaiting if awaiting and awaiting != CONFIRMATION else None
            parse = self.nlu.parse(text, expected=expected)
            turn = _Turn(text, user, lang, parse, state, key=f"chat:{cid}:{snap.version + 1}")
            self._decide(turn)
            state["lang"] = lang
            reply_text = " ".join(m.strip() for m in turn.messages if m.strip())
            awaiting_now = (state.get("form") or {}).get("awaiting")
            self.store.save(
                snap,
                state,
                lang,
                [
                    {
                        "role": "user",
                        "text": text,
                        "intent": turn.intent,
                        "confidence": turn.confidence,
                        "entities": parse.get("entities") or [],
                        "actions": [],
                    },
                    {
                        "role": "agent",
                        "text": reply_text,
                        "intent": None,
                        "confidence": None,
                        "entities": [],
                        "actions": turn.actions,
                    },
                ],
            )
        return {
            "conversation_id": cid,
            "reply": reply_text,
            "lang": lang,
            "intent": dict(parse["intent"]),
            "entities": parse.get("entities") or [],
            "actions": turn.actions,
            "awaiting": awaiting_now,
            "links": [
                {"href": a["url"], "label": f"{word(KIND, a['type'], lang)} #{a['id']}"} for a in turn.actions
            ],
        }

    def history(self, conversation_id: str, user: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The conversation's turns, oldest first (:raises ConversationNotFound:)."""
        cid = check_conversation_id(conversation_id)
        assert cid is not None
        return self.store.turns(cid, user, limit=limit)

    # --- decisions --------------------------------------------------------------------------------

    def _lock_for(self, cid: str) -> threading.Lock:
        with self._locks_guard:
            if len(self._locks) > 10_000:  # forget idle conversations' locks
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault(cid, threading.Lock())

    def _decide(self, turn: _Turn) -> None:
        form = turn.state.get("form")
        if form and form.get("awaiting") == CONFIRMATION:
            self._on_confirmation(turn, form)
        elif form and form.get("awaiting"):
            self._on_slot_answer(turn, form)
        else:
            self._on_new_request(turn)

    def _on_new_request(self, turn: _Turn) -> None:
        ents = turn.entities()
        last = turn.state.get("last")
        # "no, order 12346" right after an action: redo the last request with the corrected slots.
        if last and ents and _NO_PREFIX.match(normalize(turn.text)) and last.get("intent") in FORMS:
            slots = {**(last.get("slots") or {}), **_slot_values(last["intent"], ents)}
            self._continue_form(turn, {"intent": last["intent"], "slots": slots, "awaiting": None})
            return
        intent = turn.intent
        if intent in FORMS:
            self._continue_form(
                turn, {"intent": intent, "slots": _slot_values(intent, ents), "awaiting": None}
            )
        elif intent == "greet":
            turn.say("greet")
        elif intent == "help":
            turn.say("help")
        elif turn.parse["intent"].get("fallback_from"):
            turn.say("unsure")
        else:
            turn.say("out_of_scope")

    def _on_slot_answer(self, turn: _Turn, form: dict[str, Any]) -> None:
        name = form["intent"]
        filled = _slot_values(name, turn.entities())
        switching = turn.intent in TASK_INTENTS and turn.intent != name and turn.confidence >= 0.5
        if filled and switching and not _just_values(turn):
            self._on_new_request(turn)  # "please audit order 55555" is a new request, not an answer
            return
        if not filled:
            answer = yes_or_no(turn.text)
            if answer == "no":
                turn.state["form"] = None
                turn.say("dropped")
                return
            if switching:
                self._on_new_request(turn)  # a new request replaces the unfinished one
                return
            if turn.intent == "help":
                turn.say("help")
            else:
                turn.say("still_waiting")
        slots = {**form.get("slots", {}), **filled}
        self._continue_form(turn, {"intent": name, "slots": slots, "awaiting": None})

    def _on_confirmation(self, turn: _Turn, form: dict[str, Any]) -> None:
        name = form["intent"]
        corrections = _slot_values(name, turn.entities())
        if corrections:
            turn.say("updated")
            self._continue_form(
                turn, {"intent": name, "slots": {**form["slots"], **corrections}, "awaiting": None}
            )
            return
        answer = yes_or_no(turn.text)
        if answer == "yes":
            turn.state["form"] = None
            self._act(turn, name, form["slots"])
        elif answer == "no":
            turn.state["form"] = None
            turn.say(f"declined.{name}", **_display(form["slots"]))
        elif turn.intent in TASK_INTENTS and turn.intent != name and turn.confidence >= 0.5:
            turn.state["form"] = None
            self._on_new_request(turn)
        else:
            turn.say("confirm.again")
            turn.say(f"confirm.{name}", **_display(form["slots"]))

    def _continue_form(self, turn: _Turn, form: dict[str, Any]) -> None:
        name = form["intent"]
        spec = FORMS[name]
        slots = form["slots"]
        if name == "order_payment" and slots.get("amount") and not slots.get("currency"):
            slots["currency"] = DEFAULT_CURRENCY
        if name in ("task_status", "cancel_task") and self._act_on_work(turn, name, slots):
            turn.state["form"] = None
            return
        missing = [s for s in spec.required if not slots.get(s)]
        if missing:
            form["awaiting"] = missing[0]
            turn.state["form"] = form
            turn.say(f"ask.{name}.{missing[0]}", **_display(slots))
            return
        if spec.confirm:
            form["awaiting"] = CONFIRMATION
            turn.state["form"] = form
            turn.say(f"confirm.{name}", **_display(slots))
            return
        turn.state["form"] = None
        self._act(turn, name, slots)

    # --- acting ------------------------------------------------------------------------------------

    def _act(self, turn: _Turn, name: str, slots: dict[str, str]) -> None:
        r = self.routes
        if name == "order_audit":
            if self._has_task(r.audit_task) and not (
                r.prefer_audit_workflow and self._has_workflow(r.audit_workflow)
            ):
                self._submit(
                    turn, name, r.audit_task, {"order_no": slots["order_no"]}, slots, "started.order_audit"
                )
            elif self._has_workflow(r.audit_workflow):
                self._start(turn, name, r.audit_workflow, {"order_no": slots["order_no"]}, slots)
            else:
                turn.say("unavailable", name=r.audit_task)
        elif name == "order_payment":
            payload = {
                "order_no": slots["order_no"],
                "amount": slots["amount"],
                "currency": slots["currency"],
            }
            self._submit(turn, name, r.payment_task, payload, slots, "started.order_payment")
        elif name == "send_email":
            order = slots.get("order_no")
            subject = f"Order {order}" if order else "Message from GPT-2 Agent"
            body = (
                f"Hello,\n\nthis is about order {order}.\n\nRequest: {turn.text}\n"
                if order
                else f"Hello,\n\nRequest: {turn.text}\n"
            )
            email: dict[str, Any] = {"to": [slots["email"]], "subject": subject, "body": body}
            self._submit(turn, name, r.email_task, email, slots, "started.send_email")
        elif name == "upload_file":
            turn.say("upload_info", **_display(slots))

    def _submit(
        self,
        turn: _Turn,
        intent: str,
        task_type: str,
        payload: dict[str, Any],
        slots: dict[str, str],
        message: str,
    ) -> None:
        if not self._has_task(task_type):
            turn.say("unavailable", name=task_type)
            return
        try:
            result = self.engine.submit_task(
                task_type, payload, submitted_by=turn.user, idempotency_key=f"{turn.key}:{task_type}"
            )
        except Exception as exc:  # engine errors (bad input, conflicts) become a reply, not a 500
            logger.info("chat could not submit %s: %s", task_type, exc)
            turn.say("failed_to_start", error=_short(exc))
            return
        action = _link("task", int(result.id))
        turn.actions.append(action)
        turn.state["last"] = {"type": "task", "id": action["id"], "intent": intent, "slots": slots}
        turn.say(message, **_display(slots), id=action["id"], url=action["url"])

    def _start(
        self, turn: _Turn, intent: str, workflow: str, payload: dict[str, Any], slots: dict[str, str]
    ) -> None:
        try:
            result = self.engine.start_run(
                workflow, payload, submitted_by=turn.user, idempotency_key=f"{turn.key}:{workflow}"
            )
        except Exception as exc:
            logger.info("chat could not start %s: %s", workflow, exc)
            turn.say("failed_to_start", error=_short(exc))
            return
        action = _link("run", int(result.id))
        turn.actions.append(action)
        turn.state["last"] = {"type": "run", "id": action["id"], "intent": intent, "slots": slots}
        turn.say(f"started.{intent}.run", **_display(slots), id=action["id"], url=action["url"])

    def _has_task(self, name: str) -> bool:
        try:
            return name in self.engine.handlers
        except TypeError:
            return name in list(self.engine.handlers.names())

    def _has_workflow(self, name: str) -> bool:
        return name in list(self.engine.workflows.names())

    # --- status and cancel ---------------------------------------------------------------------------

    def _act_on_work(self, turn: _Turn, intent: str, slots: dict[str, str]) -> bool:
        """Find the work the user means and answer or cancel it; False when nothing says which."""
        target = self._target(turn, slots, active_only=intent == "cancel_task")
        if target is None:
            if slots.get("order_no") and not slots.get("task_id"):
                key = "status.none_for_order" if intent == "task_status" else "nothing_to_cancel_for_order"
                turn.say(key, order_no=slots["order_no"])
                return True
            return False
        kind, ident = target
        if intent == "task_status":
            self._describe(turn, kind, ident)
        else:
            self._cancel(turn, kind, ident)
        return True

    def _target(self, turn: _Turn, slots: dict[str, str], *, active_only: bool) -> tuple[str, int] | None:
        if slots.get("task_id"):
            kind = "run" if _RUN_WORDS.search(turn.text) else "task"
            return kind, int(slots["task_id"])
        if slots.get("order_no"):
            return self._latest_for_order(slots["order_no"], turn.text, active_only=active_only)
        last = turn.state.get("last")
        if last:
            return str(last["type"]), int(last["id"])
        return None

    def _latest_for_order(self, order_no: str, text: str, *, active_only: bool) -> tuple[str, int] | None:
        """The most recent task or run whose input names ``order_no`` (payment/audit words narrow it)."""
        wants: tuple[str, ...] = ()
        if _PAYMENT_WORDS.search(text):
            wants = (self.routes.payment_task,)
        elif _AUDIT_WORDS.search(text):
            wants = (self.routes.audit_task,)
        found: list[tuple[Any, str, int]] = []
        for t in self.engine.list_tasks(limit=RECENT_LIMIT).items:
            if str((t.input or {}).get("order_no")) != order_no or (active_only and t.status in TERMINAL):
                continue
            # Asked about a payment or an audit: that step, wherever it ran. Otherwise standalone
            # tasks only; a run's steps are answered by the run itself.
            if (t.type in wants) if wants else t.run_id is None:
                found.append((t.created_at, "task", int(t.id)))
        if not found:
            for run in self.engine.list_runs(limit=RECENT_LIMIT).items:
                if str((run.input or {}).get("order_no")) != order_no or (
                    active_only and run.status in TERMINAL
                ):
                    continue
                found.append((run.created_at, "run", int(run.id)))
        if not found:
            return None
        _, kind, ident = max(found, key=lambda item: (item[0], item[2]))
        return kind, ident

    def _describe(self, turn: _Turn, kind: str, ident: int) -> None:
        lang = turn.lang
        action = _link(kind, ident)
        try:
            obj = self.engine.get_task(ident) if kind == "task" else self.engine.get_run(ident)
        except Exception as exc:
            if type(exc).__name__ == "NotFound":
                turn.say("not_found", kind=_kind_word(kind, lang), id=ident)
                return
            raise
        turn.actions.append(action)
        turn.state["last"] = {
            "type": kind,
            "id": ident,
            "intent": (turn.state.get("last") or {}).get("intent"),
        }
        status = word(STATES, obj.status, lang)
        if kind == "task":
            detail = _task_detail(obj, lang)
            turn.say("status.task", id=ident, type=obj.type, status=status, detail=detail, url=action["url"])
        else:
            detail = _run_detail(obj, lang)
            turn.say(
                "status.run", id=ident, workflow=obj.workflow, status=status, detail=detail, url=action["url"]
            )

    def _cancel(self, turn: _Turn, kind: str, ident: int) -> None:
        lang = turn.lang
        action = _link(kind, ident)
        try:
            if kind == "task":
                self.engine.cancel_task(ident, by=turn.user)
            else:
                self.engine.cancel_run(ident, by=turn.user)
        except Exception as exc:
            name = type(exc).__name__
            if name == "NotFound":
                turn.say("not_found", kind=_kind_word(kind, lang), id=ident)
                return
            if name == "Conflict":
                obj = self.engine.get_task(ident) if kind == "task" else self.engine.get_run(ident)
                turn.actions.append(action)
                turn.say(
                    "cancel.terminal",
                    kind=word(KIND, kind, lang),
                    id=ident,
                    status=word(STATES, obj.status, lang),
                    url=action["url"],
                )
                return
            turn.say("failed_to_start", error=_short(exc))
            return
        turn.actions.append(action)
        turn.say(f"cancelled.{kind}", id=ident, url=action["url"])


# --- helpers ------------------------------------------------------------------------------------------


def _fresh_state(state: Mapping[str, Any]) -> dict[str, Any]:
    return {"form": state.get("form"), "last": state.get("last"), "lang": state.get("lang")}


def _lang(hint: str | None) -> str | None:
    if not hint:
        return None
    hint = hint.lower()
    if hint.startswith("zh"):
        return "zh"
    if hint.startswith("en"):
        return "en"
    return None


def _slot_values(intent: str, entities: Mapping[str, str]) -> dict[str, str]:
    spec = FORMS.get(intent)
    if spec is None:
        return {}
    return {k: v for k, v in entities.items() if k in spec.slots}


_FILLER = re.compile(
    r"(?i)\b(order|orders|no|number|num|id|task|job|the|is|it's|its|it|to|for|of|amount|email|mail|address|"
    r"file|name|please|pls|ok|and|my|currency)\b|"
    r"订单号|订单|单号|任务|金额|邮箱|地址|文件|是|号|的|为|请|吧|呢|啊|嗯"
)


def _just_values(turn: _Turn) -> bool:
    """Whether the text is only entity values and filler words ("order 66120", "金额是500元")."""
    text = normalize(turn.text)
    for ent in sorted(turn.parse.get("entities") or [], key=lambda e: -int(e["start"])):
        text = text[: int(ent["start"])] + " " + text[int(ent["end"]) :]
    rest = _PUNCT.sub(" ", _FILLER.sub(" ", text)).strip()
    return not rest


def _display(slots: Mapping[str, str]) -> dict[str, str]:
    """Slot values for message templates (every placeholder present)."""
    keys = ("order_no", "amount", "currency", "email", "file_name", "task_id")
    return {k: str(slots.get(k) or "") for k in keys}


def _kind_word(kind: str, lang: str) -> str:
    text = word(KIND, kind, lang)
    return text.lower() if lang == "en" else text


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def _fmt_prob(value: Any) -> str:
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return str(value)


def _task_detail(task: Any, lang: str) -> str:
    output = task.output or {}
    if task.status == "failed" and task.error:
        return word(DETAILS, "error", lang).format(error=_first_line(task.error))
    if task.status != "succeeded":
        return ""
    if "paid" in output:
        if output.get("paid"):
            return word(DETAILS, "paid", lang).format(
                amount=output.get("amount"), currency=output.get("currency")
            )
        return word(DETAILS, "declined", lang).format(reason=output.get("reason") or output.get("status"))
    if "decision" in output:
        return word(DETAILS, "audit", lang).format(
            decision=word(DECISIONS, str(output["decision"]), lang),
            probability=_fmt_prob(output.get("probability")),
        )
    return ""


def _run_detail(run: Any, lang: str) -> str:
    if run.status == "failed" and run.error:
        return word(DETAILS, "error", lang).format(error=_first_line(run.error))
    if run.status in TERMINAL:
        return ""
    steps: Sequence[Any] = (run.definition or {}).get("steps") or []
    if 0 <= int(run.current_step or 0) < len(steps):
        step = steps[int(run.current_step)]
        name = step.get("name") if isinstance(step, dict) else None
        if name:
            return word(DETAILS, "step", lang).format(step=name)
    return ""


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


__all__ = ["FORMS", "DialogueManager", "Form", "Routes", "yes_or_no"]
