"""Dependencies shared by routes: the engine, the database, and the authenticated principal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gpt2_agent.api.keys import ROLE_RANK, Role, authenticate
from gpt2_agent.config import Settings
from gpt2_agent.engine.core import Engine
from gpt2_agent.store import Database

bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")


@dataclass(frozen=True)
class Principal:
    """Who is calling. ``name`` is what tasks record as ``submitted_by`` and ``decided_by``."""

    key_id: int
    name: str
    role: Role

    def at_least(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    @property
    def sees_everything(self) -> bool:
        return self.at_least(Role.APPROVER)


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


EngineDep = Annotated[Engine, Depends(get_engine)]
DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def current_principal(
    db: DbDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    if credentials is None or not credentials.credentials.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    row = authenticate(db, credentials.credentials)
    if row is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return Principal(key_id=row.id, name=row.name, role=Role(row.role))


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require(role: Role) -> object:
    """Dependency that admits ``role`` and above."""

    def check(principal: PrincipalDep) -> Principal:
        if not principal.at_least(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {role.value} role")
        return principal

    return Depends(check)


ApproverDep = Annotated[Principal, require(Role.APPROVER)]
AdminDep = Annotated[Principal, require(Role.ADMIN)]


def pagination(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size")] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> tuple[int, int]:
    maximum = request.app.state.settings.page_size_max
    return min(limit, maximum), offset


PageDep = Annotated[tuple[int, int], Depends(pagination)]

# Database ids are 64-bit; larger numbers are a 422, not an overflow deep in the driver.
MAX_ID = 2**63 - 1
Id = Annotated[int, Path(ge=1, le=MAX_ID, description="Numeric id")]
