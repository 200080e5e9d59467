"""Dependencies every domain's routes share, defined once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.config import Settings
from stagecast.db.retry import REQUEST_ATTEMPT
from stagecast.pagination import PageParams, offset_params, page_params
from stagecast.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_settings(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    return runtime.settings


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(
    request: Request, runtime: Annotated[Runtime, Depends(get_runtime)]
) -> AsyncIterator[AsyncSession]:
    """The request's one session, shared by authentication and the route, which opens its
    transactions with `session.begin()`.

    GET, HEAD and OPTIONS get a read-only session (SQLite: a deferred BEGIN that never takes
    the write lock; PostgreSQL: BEGIN READ ONLY); every other method a writing one."""
    db = runtime.db
    opened = db.read_session() if request.method in READ_METHODS else db.session()
    async with opened as session:
        attempt = request.scope.get("state", {}).get(REQUEST_ATTEMPT)
        if attempt is not None:
            session.info[REQUEST_ATTEMPT] = attempt
        yield session


async def get_read_session(session: Annotated[AsyncSession, Depends(get_session)]) -> AsyncSession:
    """The request's session, for routes that only read (the same object as SessionDep's)."""
    return session


def client_ip(request: Request) -> str:
    """The caller's address (uvicorn resolves X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else "unknown"


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]
PageDep = Annotated[PageParams, Depends(page_params)]
OffsetPageDep = Annotated[PageParams, Depends(offset_params)]
