"""HTTP routes of moderation: bans and timeouts, moderators; reports, the moderation queue
and its automatic flags, seed 003's admin reports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.deps import AdminUser, CurrentUser, StaffUser
from stagecast.accounts.models import User
from stagecast.channels import service as channels
from stagecast.deps import PageDep, ReadSessionDep, RuntimeDep, SessionDep
from stagecast.errors import problem_responses
from stagecast.media.service import media_of
from stagecast.moderation import queue, reports
from stagecast.moderation import service as moderation
from stagecast.moderation.models import FlagKind, ReportedType, ReportReason, Resolution
from stagecast.moderation.schemas import (
    AdminReportOut,
    AdminReportsPage,
    ApproveIn,
    BanCreate,
    BanOut,
    ContentReportIn,
    FlagOut,
    ModeratorCreate,
    ModeratorOut,
    QueueItem,
    QueuePage,
    RejectIn,
    ReportOut,
    ResolveIn,
)
from stagecast.pagination import MAX_LIMIT, MAX_OFFSET, Page, PageParams, make_page
from stagecast.ratelimit import rate_limit
from stagecast.runtime import Runtime

router = APIRouter(prefix="/channels/{channel_id}", tags=["moderation"])


@router.post(
    "/bans",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 404, 422),
)
async def ban(channel_id: str, body: BanCreate, user: CurrentUser, session: SessionDep) -> BanOut:
    """Ban a user from the channel's chat, or time them out with `duration_seconds`."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        return await moderation.ban_user(
            session,
            actor=user,
            channel=channel,
            user_id=body.user_id,
            username=body.username,
            duration_seconds=body.duration_seconds,
            reason=body.reason,
        )


@router.delete(
    "/bans/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409),
)
async def unban(
    channel_id: str, user_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> Response:
    """Lift a ban or timeout."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        await moderation.unban_user(session, actor=user, channel=channel, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/bans", responses=problem_responses(401, 403, 404))
async def list_bans(
    channel_id: str, user: CurrentUser, session: SessionDep, page: PageDep
) -> Page[BanOut]:
    """Active bans and timeouts (moderators)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        rows, cursor = await moderation.list_bans(session, actor=user, channel=channel, params=page)
    return make_page(rows, cursor)


@router.get("/moderators", responses=problem_responses(404))
async def list_moderators(channel_id: str, session: SessionDep) -> dict[str, list[ModeratorOut]]:
    """The channel's moderators."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        return {"data": await moderation.list_moderators(session, channel=channel)}


@router.post("/moderators", responses=problem_responses(401, 403, 404, 422))
async def add_moderator(
    channel_id: str, body: ModeratorCreate, user: CurrentUser, session: SessionDep
) -> ModeratorOut:
    """Appoint a moderator (owner or admin); appointing twice changes nothing."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        return await moderation.add_moderator(
            session, actor=user, channel=channel, user_id=body.user_id, username=body.username
        )


@router.delete(
    "/moderators/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def remove_moderator(
    channel_id: str, user_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> Response:
    """Remove a moderator (owner or admin)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        await moderation.remove_moderator(session, actor=user, channel=channel, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- reports, the moderation queue, flags (issue 17) ---

reports_router = APIRouter(tags=["moderation"])
queue_router = APIRouter(
    prefix="/moderation", tags=["moderation"], responses=problem_responses(401, 403)
)
admin_reports_router = APIRouter(
    prefix="/admin/reports", tags=["admin"], responses=problem_responses(401, 403)
)

_report_limit = Depends(rate_limit("reports"))
_REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ReportOut, "description": "Merged into the caller's pending report of it"},
    **problem_responses(401, 403, 404, 422, 429),
}


async def _file(
    data: ContentReportIn, user: User, session: AsyncSession, response: Response
) -> ReportOut:
    async with session.begin():
        report, created = await queue.report_content(session, reporter=user, data=data)
        out = reports.present_report(report)
    if not created:
        response.status_code = status.HTTP_200_OK
    return out


@reports_router.post(
    "/reports",
    status_code=status.HTTP_201_CREATED,
    dependencies=[_report_limit],
    responses=_REPORT_RESPONSES,
)
async def create_report(
    data: ContentReportIn, user: CurrentUser, session: SessionDep, response: Response
) -> ReportOut:
    """Seed 003: report a user, stream, VOD, clip, chat message or channel (reason from the
    fixed list). Reporting it again while the first report is pending adds to that one (200)."""
    return await _file(data, user, session, response)


@queue_router.post(
    "/report",
    status_code=status.HTTP_201_CREATED,
    dependencies=[_report_limit],
    responses=_REPORT_RESPONSES,
)
async def moderation_report(
    data: ContentReportIn, user: CurrentUser, session: SessionDep, response: Response
) -> ReportOut:
    """Seed 002's name for `POST /reports`: the same body and answer."""
    return await _file(data, user, session, response)


@queue_router.get("/queue", responses=problem_responses(422))
async def moderation_queue(
    _staff: StaffUser,
    session: ReadSessionDep,
    status_: Annotated[queue.QueueStatus, Query(alias="status")] = "open",
    content_type: Annotated[ReportedType | None, Query()] = None,
    reason: Annotated[ReportReason | None, Query()] = None,
    source: Annotated[queue.QueueSource, Query(description="cases with reports, flags")] = "all",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 25,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> QueuePage:
    """The moderation queue (staff): one item per reported or flagged object, its reports
    and flags grouped, oldest first."""
    async with session.begin():
        items, info = await queue.list_queue(
            session,
            status=status_,
            content_type=content_type,
            reason=reason,
            source=source,
            params=PageParams(limit=limit, cursor=cursor or None),
        )
    return QueuePage(
        items=items, next_cursor=info.next_cursor, has_more=info.next_cursor is not None
    )


@queue_router.get("/queue/{case_id}", responses=problem_responses(404))
async def moderation_queue_item(
    case_id: uuid.UUID, _staff: StaffUser, session: ReadSessionDep
) -> QueueItem:
    """One item of the queue, decided or not."""
    async with session.begin():
        return await queue.get_item(session, case_id)


async def _decide(
    runtime: Runtime,
    session: AsyncSession,
    *,
    actor: User,
    case_id: uuid.UUID,
    action: Resolution,
    note: str | None,
) -> QueueItem:
    media = media_of(runtime)
    async with session.begin():
        case = await queue.get_case(session, case_id)
        after = await queue.decide(
            session,
            actor=actor,
            case=case,
            action=action,
            note=note,
            store=media.store,
            hooks=runtime.before_vod_media_withdrawn,
        )
    await queue.carry_out(runtime, after)
    async with session.begin():
        return await queue.get_item(session, case_id)


@queue_router.post("/queue/{case_id}/approve", responses=problem_responses(404, 409, 422))
async def approve_case(
    case_id: uuid.UUID, body: ApproveIn, staff: StaffUser, session: SessionDep, runtime: RuntimeDep
) -> QueueItem:
    """Keep the content: its pending reports are dismissed and their reporters told."""
    return await _decide(
        runtime, session, actor=staff, case_id=case_id, action=Resolution.DISMISSED, note=body.note
    )


@queue_router.post("/queue/{case_id}/reject", responses=problem_responses(404, 409, 422))
async def reject_case(
    case_id: uuid.UUID, body: RejectIn, staff: StaffUser, session: SessionDep, runtime: RuntimeDep
) -> QueueItem:
    """Remove the content for real (a VOD or clip deleted, a chat message deleted from every
    viewer's chat, a stream ended, a channel taken off the air, an account suspended);
    `suspend` or `ban` also restricts its owner's account (signed out, sockets closed).
    Reporters are told, and the owner."""
    return await _decide(
        runtime,
        session,
        actor=staff,
        case_id=case_id,
        action=queue.rejection(body.action),
        note=body.note,
    )


@queue_router.get("/flags", responses=problem_responses(422))
async def moderation_flags(
    _staff: StaffUser,
    session: ReadSessionDep,
    page: PageDep,
    kind: Annotated[FlagKind | None, Query()] = None,
    channel_id: Annotated[uuid.UUID | None, Query()] = None,
    since: Annotated[datetime | None, Query()] = None,
) -> Page[FlagOut]:
    """Seed 002: what the platform flagged by itself in chat (blocked terms, link spam,
    floods), newest first, with the evidence; each flag is in the queue's case of its message."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    async with session.begin():
        rows, info = await queue.list_flags(
            session, kind=kind, channel_id=channel_id, since=since, params=page
        )
    return make_page(rows, info)


@admin_reports_router.get("", responses=problem_responses(422))
async def admin_list_reports(
    _admin: AdminUser,
    session: ReadSessionDep,
    status_: Annotated[
        Literal["pending", "resolved", "dismissed", "all"], Query(alias="status")
    ] = "pending",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 25,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> AdminReportsPage:
    """Seed 003: reports one by one, newest first, with their reporter and resolution."""
    async with session.begin():
        items, info = await queue.list_reports(
            session, status=status_, params=PageParams(limit=limit, offset=offset)
        )
    return AdminReportsPage(items=items, total=info.total or 0, limit=limit, offset=offset)


@admin_reports_router.post("/{report_id}/resolve", responses=problem_responses(404, 409, 422))
async def admin_resolve_report(
    report_id: uuid.UUID,
    body: ResolveIn,
    admin: AdminUser,
    session: SessionDep,
    runtime: RuntimeDep,
) -> AdminReportOut:
    """Seed 003: resolve (remove the content), dismiss (keep it), ban (remove it and ban its
    owner) or warn (keep it, warn its owner). It decides the report's whole case."""
    media = media_of(runtime)
    async with session.begin():
        after = await queue.resolve_report(
            session,
            actor=admin,
            report_id=report_id,
            action=body.action,
            note=body.note,
            store=media.store,
            hooks=runtime.before_vod_media_withdrawn,
        )
    await queue.carry_out(runtime, after)
    async with session.begin():
        return await queue.get_admin_report(session, report_id)
