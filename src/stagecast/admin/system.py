"""Seed 003's system routes: `/status`, `/csrf-token`, `/validate`, `/upload/limits`,
`/upload/validate-type`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import select

from stagecast import csrf
from stagecast.accounts import service as accounts
from stagecast.accounts.models import User
from stagecast.accounts.schemas import USERNAME_PATTERN
from stagecast.accounts.security import password_problems
from stagecast.admin import maintenance
from stagecast.admin.schemas import (
    ComponentStatus,
    CsrfToken,
    FieldCheck,
    MaintenanceOut,
    PlatformStatus,
    TypeCheck,
    UploadKind,
    UploadLimits,
    ValidateIn,
    ValidateOut,
)
from stagecast.admin.switches import Maintenance
from stagecast.config import Settings
from stagecast.db.base import utcnow
from stagecast.deps import ReadSessionDep, RuntimeDep
from stagecast.errors import AppError, NotFound, problem_responses
from stagecast.health import service as health
from stagecast.ratelimit import rate_limit
from stagecast.runtime import Runtime

router = APIRouter(tags=["system"])

# What can be uploaded, by kind. A domain that takes uploads registers its kind here
# (`register_upload_kind`), so that `/upload/limits` and `/upload/validate-type` tell clients
# what its route will accept; the route itself still checks the content, not the name.
UploadKindFactory = Callable[[Settings], UploadKind]
UPLOAD_KINDS: dict[str, UploadKindFactory] = {}


def register_upload_kind(name: str, factory: UploadKindFactory) -> None:
    UPLOAD_KINDS[name] = factory


register_upload_kind(
    "browser_stream_chunk",
    lambda s: UploadKind(
        kind="browser_stream_chunk",
        max_bytes=s.media.max_chunk_bytes,
        content_types=["video/webm", "audio/webm"],
        extensions=[".webm"],
        description="one MediaRecorder chunk of a browser broadcast (Socket.IO stream-data)",
    ),
)


def maintenance_out(runtime: Runtime, state: Maintenance) -> MaintenanceOut:
    seconds = (
        maintenance.retry_after(state, runtime.settings.admin.maintenance_retry_after_seconds)
        if state.enabled
        else None
    )
    return MaintenanceOut(
        enabled=state.enabled,
        message=state.message,
        ends_at=state.ends_at,
        started_at=state.started_at,
        retry_after=seconds,
    )


@router.get("/status")
async def platform_status(runtime: RuntimeDep) -> PlatformStatus:
    """Whether the platform works: database, Redis, chat (Socket.IO) and the stream server."""
    database, redis = await asyncio.gather(
        health.check_database(runtime), health.check_redis(runtime)
    )
    components = {
        "database": ComponentStatus(
            status=database.status,
            details={k: v for k, v in database.details.items() if k in {"latency_ms", "error"}},
        ),
        "redis": ComponentStatus(status=redis.status, details=redis.details)
        if redis is not None
        else ComponentStatus(status="disabled", details={"reason": "not configured"}),
        "chat": ComponentStatus(
            status="ok" if runtime.realtime is not None and not runtime.shutting_down else "down",
            details={"fan_out": "redis" if runtime.settings.redis_url else "in-process"},
        ),
        "stream_server": _stream_server(runtime),
    }
    state = await maintenance.current(runtime)
    if components["database"].status == "down":
        overall = "down"
    elif state.enabled:
        overall = "maintenance"
    elif any(c.status in {"degraded", "down"} for c in components.values()):
        overall = "degraded"
    else:
        overall = "operational"
    return PlatformStatus(
        status=overall,
        timestamp=utcnow(),
        components=components,
        maintenance=maintenance_out(runtime, state),
    )


def _stream_server(runtime: Runtime) -> ComponentStatus:
    media = runtime.media
    live = sum(1 for b in media.broadcasts.values() if not b.ended.is_set()) if media else 0
    details: dict[str, object] = {
        "rtmp": runtime.rtmp_port is not None,
        "live_here": live,
        "ffmpeg": runtime.ffmpeg_version,
    }
    if runtime.ffmpeg_version is None:
        return ComponentStatus(status="degraded", details=details)
    if not runtime.settings.rtmp_enabled:
        return ComponentStatus(status="ok", details={**details, "rtmp": False})
    return ComponentStatus(status="ok" if runtime.rtmp_port else "down", details=details)


@router.get("/csrf-token")
async def csrf_token(runtime: RuntimeDep, request: Request, response: Response) -> CsrfToken:
    """A CSRF token for the routes the refresh cookie authenticates (send it as X-CSRF-Token)."""
    token = csrf.issue(runtime.secrets)
    response.set_cookie(
        csrf.COOKIE,
        token,
        max_age=csrf.TTL_SECONDS,
        path=csrf.COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https" or runtime.settings.environment == "production",
    )
    response.headers["Cache-Control"] = "no-store"
    return CsrfToken(csrf_token=token, header=csrf.HEADER, expires_in=csrf.TTL_SECONDS)


def _strength(password: str, problems: list[str]) -> Literal["weak", "fair", "strong"]:
    if problems:
        return "weak"
    return "strong" if len(password) >= 14 else "fair"


@router.post(
    "/validate",
    dependencies=[Depends(rate_limit("validation", per="ip"))],
    responses=problem_responses(422, 429),
)
async def validate(body: ValidateIn, session: ReadSessionDep) -> ValidateOut:
    """Check a username, an email or a password as registration would, before registering."""
    out = ValidateOut(valid=True)
    async with session.begin():
        if body.username is not None:
            errors = [] if USERNAME_PATTERN.fullmatch(body.username) else [
                "3 to 25 letters, digits or underscores"
            ]  # fmt: skip
            taken = not errors and await session.scalar(
                select(User.id).where(User.username_key == body.username.lower())
            ) is not None  # fmt: skip
            if taken:
                errors.append("is taken")
            out.username = FieldCheck(valid=not errors, available=not taken, errors=errors)
        normalized = ""
        if body.email is not None:
            try:
                normalized = accounts.normalize_email(body.email)
            except AppError as error:
                out.email = FieldCheck(valid=False, available=None, errors=[error.detail])
            else:
                taken = await session.scalar(
                    select(User.id).where(User.email == normalized)
                ) is not None  # fmt: skip
                out.email = FieldCheck(
                    valid=not taken, available=not taken, errors=["is taken"] if taken else []
                )
    if body.password is not None:
        problems = password_problems(body.password, username=body.username or "", email=normalized)
        out.password = FieldCheck(
            valid=not problems,
            errors=[f"Password {p}" for p in problems],
            strength=_strength(body.password, problems),
        )
    out.valid = all(c.valid for c in (out.username, out.email, out.password) if c is not None)
    return out


@router.get("/upload/limits")
async def upload_limits(runtime: RuntimeDep) -> UploadLimits:
    """What the platform accepts as uploads, by kind, and the largest request body."""
    settings = runtime.settings
    return UploadLimits(
        max_request_bytes=settings.max_body_bytes,
        kinds=[factory(settings) for factory in UPLOAD_KINDS.values()],
    )


class UnknownUploadKind(NotFound):
    code, title = "UPLOAD_KIND_NOT_FOUND", "No such upload kind"


@router.get("/upload/validate-type", responses=problem_responses(404, 422))
async def validate_upload_type(
    runtime: RuntimeDep,
    kind: Annotated[str, Query(max_length=64, description="an upload kind of /upload/limits")],
    filename: Annotated[str | None, Query(max_length=255)] = None,
    content_type: Annotated[str | None, Query(max_length=255)] = None,
    size: Annotated[int | None, Query(ge=0)] = None,
) -> TypeCheck:
    """Whether a file of this name, type and size would be accepted for `kind` (a hint: the
    upload itself is checked by its content)."""
    factory = UPLOAD_KINDS.get(kind)
    if factory is None:
        raise UnknownUploadKind(
            f"No upload kind {kind!r}; known: {', '.join(sorted(UPLOAD_KINDS))}"
        )
    spec = factory(runtime.settings)
    extension = PurePosixPath(filename).suffix.lower() or None if filename else None
    declared = content_type.split(";", 1)[0].strip().lower() if content_type else None
    reason = None
    if filename is None and declared is None:
        reason = "give the file's name or its content type"
    elif extension is not None and extension not in spec.extensions:
        reason = f"files ending {extension} are not accepted; use {', '.join(spec.extensions)}"
    elif filename is not None and extension is None:
        reason = f"the file name has no extension; use {', '.join(spec.extensions)}"
    elif declared is not None and declared not in spec.content_types:
        reason = f"{declared} is not accepted; use {', '.join(spec.content_types)}"
    elif size is not None and size > spec.max_bytes:
        reason = f"at most {spec.max_bytes} bytes"
    return TypeCheck(
        allowed=reason is None,
        kind=kind,
        content_type=declared,
        extension=extension,
        max_bytes=spec.max_bytes,
        reason=reason,
    )
