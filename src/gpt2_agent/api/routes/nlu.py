"""Natural language: ``POST /nlu/parse`` (Rasa-shaped) and ``POST /chat`` (a dialogue that starts
and tracks work). Unknown conversation ids of a well-formed shape start a new conversation with
that id; another user's conversation is a 404."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from gpt2_agent.api.deps import PrincipalDep
from gpt2_agent.nlu.errors import (
    ConversationBusy,
    ConversationNotFound,
    InvalidConversationId,
    InvalidText,
    NluModelNotReady,
    TextTooLong,
)

router = APIRouter(tags=["nlu"])


class ParseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=100_000)


class EntityOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    entity: str
    value: Any
    start: int
    end: int
    confidence: float | None = None


class IntentOut(BaseModel):
    name: str
    confidence: float


class ParseOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    text: str
    intent: IntentOut
    entities: list[EntityOut]
    intent_ranking: list[IntentOut]


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=100_000)
    conversation_id: str | None = Field(default=None, max_length=64)
    lang_hint: Literal["en", "zh"] | None = Field(
        default=None,
        validation_alias=AliasChoices("lang_hint", "lang"),
        description="Reply language when the text shows none",
    )


class ChatLink(BaseModel):
    href: str = Field(description="API path of the task or run the reply refers to")
    label: str


class ChatOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    conversation_id: str
    reply: str
    lang: str
    intent: IntentOut | None = Field(default=None, description="What the parser understood this turn")
    entities: list[EntityOut] = Field(default_factory=list)
    actions: list[dict[str, Any]] = Field(
        default_factory=list, description='Work started or touched: {"type": "task"|"run", "id", "url"}'
    )
    awaiting: str | None = Field(default=None, description='The slot asked for, "confirmation", or null')
    links: list[ChatLink] = Field(default_factory=list)


def _raise(exc: Exception) -> None:
    if isinstance(exc, TextTooLong):
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from None
    if isinstance(exc, InvalidText):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{exc.field}: {exc}") from None
    if isinstance(exc, InvalidConversationId):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"conversation_id: {exc}") from None
    if isinstance(exc, ConversationNotFound):
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    if isinstance(exc, ConversationBusy):
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if isinstance(exc, NluModelNotReady):
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    raise exc


@router.post("/nlu/parse", response_model=ParseOut, responses={413: {}, 422: {}, 503: {}})
async def parse(body: ParseIn, request: Request, _: PrincipalDep) -> Any:
    """Intent with confidence and ranking, entities with character offsets (Rasa's shape)."""
    try:
        return await run_in_threadpool(request.app.state.nlu.parse, body.text)
    except Exception as exc:
        _raise(exc)


@router.post("/chat", response_model=ChatOut, responses={404: {}, 409: {}, 413: {}, 422: {}, 503: {}})
async def chat(body: ChatIn, request: Request, principal: PrincipalDep) -> Any:
    """One turn of a conversation: asks for missing details, confirms before paying, starts work
    and links it. Replies in the user's language."""
    try:
        return await run_in_threadpool(
            request.app.state.dialogue.reply, body.conversation_id, body.text, principal.name, body.lang_hint
        )
    except Exception as exc:
        _raise(exc)
