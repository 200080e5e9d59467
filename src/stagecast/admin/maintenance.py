"""Maintenance mode: while it is on, the API answers 503 with `Retry-After` to everyone but
admins, and no new broadcast starts; broadcasts already on air continue.

Left open while on: health and probes, `/api/v1/admin/*`, the status page, the active
announcements (the web app's banner), the CSRF token, sign-in (admins only: `login` refuses
the others after checking the password), refresh and logout (they keep or end a session, they
start none), payment providers' webhooks (money already moved), and everything outside the API
(the web app's shell and files, so that it can show the maintenance page; `/hls` playback of
the streams still on air; Socket.IO, whose connections carry those streams' chat).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Receive, Scope, Send

from stagecast.accounts.models import Role
from stagecast.admin.models import MaintenanceState
from stagecast.admin.switches import Maintenance
from stagecast.db.base import utcnow
from stagecast.errors import AppError, InvalidToken, ServiceUnavailable
from stagecast.middleware import send_problem

if TYPE_CHECKING:
    import uuid

    from stagecast.accounts.models import User
    from stagecast.runtime import Runtime

GATED_PREFIXES = ("/api/v1/", "/livestream")
OPEN_PREFIXES = (
    "/api/v1/admin/",
    "/api/v1/health",
    "/api/v1/webhooks/",
)
OPEN_PATHS = frozenset(
    {
        "/api/v1/status",
        "/api/v1/announcements/active",
        "/api/v1/csrf-token",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/sessions/refresh",
        "/livestream/health",
    }
)


class MaintenanceMode(ServiceUnavailable):
    code, title = "MAINTENANCE", "The platform is down for maintenance"


def gated(path: str) -> bool:
    """Whether maintenance mode closes `path` (to callers other than admins)."""
    if not path.startswith(GATED_PREFIXES) or path in OPEN_PATHS:
        return False
    return not path.startswith(OPEN_PREFIXES)


def retry_after(state: Maintenance, default_seconds: int, *, now: datetime | None = None) -> int:
    """Seconds until the announced end, else the configured default (at least 1)."""
    if state.ends_at is None:
        return default_seconds
    left = (state.ends_at - (now or utcnow())).total_seconds()
    return max(1, math.ceil(left)) if left > 0 else default_seconds


def describe(state: Maintenance) -> dict[str, Any]:
    return {
        "enabled": state.enabled,
        "message": state.message,
        "ends_at": state.ends_at.isoformat() if state.ends_at else None,
        "started_at": state.started_at.isoformat() if state.started_at else None,
    }


def refusal(runtime: Runtime, state: Maintenance) -> MaintenanceMode:
    seconds = retry_after(state, runtime.settings.admin.maintenance_retry_after_seconds)
    return MaintenanceMode(
        state.message or "The platform is down for maintenance; try again later",
        headers={"Retry-After": str(seconds)},
        extra={"retry_after": seconds, "maintenance": describe(state)},
    )


async def current(runtime: Runtime) -> Maintenance:
    if runtime.switches is None:
        return Maintenance()
    return (await runtime.switches.current()).maintenance


async def refuse_unless_admin(runtime: Runtime, user: User) -> None:
    """Sign-in during maintenance is for admins only."""
    state = await current(runtime)
    if state.enabled and user.role_enum is not Role.ADMIN:
        raise refusal(runtime, state)


async def refuse_new_broadcast(runtime: Runtime) -> None:
    """No new publisher goes on air during maintenance (those on air continue)."""
    state = await current(runtime)
    if state.enabled:
        raise refusal(runtime, state)


async def set_maintenance(
    session: AsyncSession,
    *,
    enabled: bool,
    message: str | None,
    ends_at: datetime | None,
    actor_id: uuid.UUID,
) -> MaintenanceState:
    """Turn maintenance mode on or off (the route announces the change after its commit)."""
    row = await session.get(MaintenanceState, "platform")
    now = utcnow()
    if row is None:
        row = MaintenanceState(id="platform")
        session.add(row)
    if enabled and not row.enabled:
        row.started_at = now
    row.enabled, row.message, row.ends_at = enabled, message, ends_at
    row.updated_by_id, row.updated_at = actor_id, now
    if not enabled:
        row.started_at = None
    await session.flush()
    return row


def _admin_token(runtime: Runtime, scope: Scope) -> bool:
    """Whether the request carries a valid admin access token (the token's role claim; a
    demoted admin's token says so for its remaining minutes at most)."""
    for key, value in scope.get("headers", []):
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not token:
                return False
            try:
                claims = runtime.tokens.decode_access(token.strip())
            except (InvalidToken, AppError):
                return False
            return claims.role == "admin"
    return False


class MaintenanceMiddleware:
    """Answer 503 MAINTENANCE on gated paths while maintenance mode is on."""

    def __init__(self, app: ASGIApp, *, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not gated(scope["path"]) or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        state = await current(self.runtime)
        if not state.enabled or _admin_token(self.runtime, scope):
            await self.app(scope, receive, send)
            return
        await send_problem(send, scope, refusal(self.runtime, state))
