"""Conversation state in SQL: load, save with optimistic concurrency, read the turns back.

A conversation id is chosen by the client (the web console makes one per page) or by the
server when the client sends none. **An unknown id starts a new conversation under that id**;
an id that belongs to another user is reported as not found, so ids of others stay secret.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from gpt2_agent.nlu.errors import ConversationBusy, ConversationNotFound, InvalidConversationId
from gpt2_agent.store import Database
from gpt2_agent.store.base import utcnow
from gpt2_agent.store.nlu_tables import Conversation, ConversationTurn

CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_USER = 200


def check_conversation_id(value: str | None) -> str | None:
    """``value`` if it is a valid id (or None); raises :class:`InvalidConversationId`."""
    if value is None:
        return None
    if not isinstance(value, str) or not CONVERSATION_ID.match(value):
        raise InvalidConversationId("conversation_id must be 1-64 characters of letters, digits, '_' and '-'")
    return value


def new_conversation_id() -> str:
    """A fresh random id (URL-safe, 22 characters)."""
    return secrets.token_urlsafe(16)


@dataclass
class Snapshot:
    """A conversation as loaded: its state, the version to save against, and whether it exists."""

    id: str
    user: str
    state: dict[str, Any] = field(default_factory=dict)
    lang: str | None = None
    version: int = 0
    exists: bool = False


class ConversationStore:
    """Reads and writes ``conversations`` and ``conversation_turns``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self, conversation_id: str, user: str) -> Snapshot:
        """The conversation, or an empty snapshot for an unknown id.

        :raises ConversationNotFound: the id belongs to another user.
        """
        with self.db.session() as s:
            row = s.get(Conversation, conversation_id)
            if row is None:
                return Snapshot(conversation_id, user)
            if row.user != user:
                raise ConversationNotFound(f"conversation {conversation_id!r} not found")
            return Snapshot(conversation_id, user, dict(row.state or {}), row.lang, row.version, True)

    def save(self, snap: Snapshot, state: dict[str, Any], lang: str, turns: list[dict[str, Any]]) -> int:
        """Store the new state and append ``turns``; returns the new version.

        :raises ConversationBusy: someone saved this conversation after ``snap`` was loaded.
        """
        now = utcnow()
        try:
            with self.db.write_session() as s:
                if not snap.exists:
                    s.add(
                        Conversation(
                            id=snap.id,
                            user=snap.user[:MAX_USER],
                            lang=lang,
                            state=state,
                            version=1,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    s.flush()
                else:
                    result = s.execute(
                        update(Conversation)
                        .where(Conversation.id == snap.id, Conversation.version == snap.version)
                        .values(state=state, lang=lang, version=snap.version + 1, updated_at=now)
                        .execution_options(synchronize_session=False)
                    )
                    if getattr(result, "rowcount", 0) != 1:
                        raise ConversationBusy(f"conversation {snap.id!r} changed meanwhile; retry")
                seq = s.scalar(
                    select(func.coalesce(func.max(ConversationTurn.seq), 0)).where(
                        ConversationTurn.conversation_id == snap.id
                    )
                )
                for offset, turn in enumerate(turns, start=1):
                    # PostgreSQL text cannot hold NUL; keep the rest of the message as it was sent.
                    turn = {**turn, "text": str(turn["text"]).replace("\x00", "\ufffd")}
                    s.add(
                        ConversationTurn(
                            conversation_id=snap.id, seq=int(seq or 0) + offset, created_at=now, **turn
                        )
                    )
        except IntegrityError:
            raise ConversationBusy(f"conversation {snap.id!r} was created meanwhile; retry") from None
        return snap.version + 1

    def turns(self, conversation_id: str, user: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The last ``limit`` turns, oldest first. :raises ConversationNotFound: unknown or not yours."""
        with self.db.session() as s:
            row = s.get(Conversation, conversation_id)
            if row is None or row.user != user:
                raise ConversationNotFound(f"conversation {conversation_id!r} not found")
            rows = s.scalars(
                select(ConversationTurn)
                .where(ConversationTurn.conversation_id == conversation_id)
                .order_by(ConversationTurn.seq.desc())
                .limit(limit)
            ).all()
            return [
                {
                    "seq": r.seq,
                    "role": r.role,
                    "text": r.text,
                    "intent": r.intent,
                    "confidence": r.confidence,
                    "entities": r.entities,
                    "actions": r.actions,
                    "at": r.created_at.isoformat(),
                }
                for r in reversed(rows)
            ]


__all__ = ["CONVERSATION_ID", "ConversationStore", "Snapshot", "check_conversation_id", "new_conversation_id"]
