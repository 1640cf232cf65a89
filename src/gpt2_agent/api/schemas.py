"""Request and response models of the HTTP API (the single source for the OpenAPI document)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

TaskStatus = Literal["queued", "running", "waiting_approval", "succeeded", "failed", "cancelled"]
RunStatus = Literal["queued", "running", "waiting_approval", "succeeded", "failed", "cancelled", "rejected"]


class ErrorBody(BaseModel):
    detail: str
    errors: list[dict[str, Any]] = Field(default_factory=list)


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=200, description="A registered task type")
    input: dict[str, Any] = Field(default_factory=dict)


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    type: str
    status: str
    input: dict[str, Any]
    output: dict[str, Any] | None
    error: str | None
    run_id: int | None
    step_name: str | None
    attempt: int
    max_attempts: int
    idempotency_key: str
    submitted_by: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    task_id: int | None
    run_id: int | None
    at: dt.datetime
    actor: str
    from_state: str | None
    to_state: str
    reason: str
    attempt: int | None


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(default_factory=dict)


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    workflow: str
    status: str
    input: dict[str, Any]
    output: dict[str, Any] | None
    context: dict[str, Any]
    current_step: int
    error: str | None
    submitted_by: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None


class RunDetail(RunOut):
    tasks: list[TaskOut] = Field(default_factory=list)


class WorkflowOut(BaseModel):
    name: str
    description: str
    input: dict[str, str]
    steps: list[dict[str, Any]]


class ApprovalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    run_id: int
    task_id: int
    step_name: str
    status: str
    title: str
    context: dict[str, Any]
    submitted_by: str | None
    decided_by: str | None
    comment: str | None
    created_at: dt.datetime
    decided_at: dt.datetime | None


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    comment: str | None = Field(default=None, max_length=4000)


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Literal["submitter", "approver", "admin"]


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: str
    prefix: str
    active: bool
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The secret. Shown once; only its hash is stored.")


class FileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sha256: str
    size: int
    original_name: str
    content_type: str
    uploaded_by: str | None
    created_at: dt.datetime


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class ModelOut(BaseModel):
    name: str
    task: str
    description: str
    metric: str
    generation: int
    latest_version: int | None
    version_count: int
    aliases: dict[str, int]
    created_at: dt.datetime
    updated_at: dt.datetime


class VersionOut(BaseModel):
    name: str
    version: int
    status: str
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    eval_set_hash: str | None
    files: dict[str, str]
    size_bytes: int
    created_by: str
    created_at: dt.datetime
    aliases: list[str]


class AliasChangeOut(BaseModel):
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    who: str
    at: dt.datetime
    reason: str


class ModelDetail(ModelOut):
    versions: list[VersionOut]
    history: list[AliasChangeOut]


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: str = Field(default="production", min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_-]*$")
    force: bool = False
    reason: str = Field(default="", max_length=1000)


class PromotionOut(BaseModel):
    name: str
    alias: str
    version: int
    previous_version: int | None
    metric: str
    value: float | None
    previous_value: float | None
    forced: bool
    changed: bool
    reason: str
