"""HTTP routes of recordings: one by id, a channel's list, edits and deletion, watch
progress, reports, chat replay, seek previews."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Response, status

from stagecast.accounts.deps import CurrentUser, OptionalUser
from stagecast.channels import service as channels
from stagecast.channels.models import Channel
from stagecast.deps import PageDep, ReadSessionDep, RuntimeDep, SessionDep
from stagecast.errors import problem_responses
from stagecast.media.service import media_of
from stagecast.moderation import reports
from stagecast.moderation.schemas import ReportCreate, ReportOut
from stagecast.pagination import Page, make_page
from stagecast.ratelimit import rate_limit
from stagecast.vods import jobs
from stagecast.vods import service as vods
from stagecast.vods.schemas import ProgressIn, ProgressOut, ReplayMessage, VodOut, VodUpdate

router = APIRouter(tags=["vods"])

_report_limit = Depends(rate_limit("reports"))


@router.get("/vods/{vod_id}", responses=problem_responses(403, 404))
async def get_vod(vod_id: uuid.UUID, viewer: OptionalUser, session: ReadSessionDep) -> VodOut:
    """A recording: its duration, size, renditions, seek previews and where to play it
    (subscribers-only ones answer 403 to others, private ones 404)."""
    async with session.begin():
        return vods.present_vod(await vods.watchable_vod(session, vod_id, viewer))


@router.patch("/vods/{vod_id}", responses=problem_responses(401, 403, 404, 422))
async def update_vod(
    vod_id: uuid.UUID, data: VodUpdate, user: CurrentUser, session: SessionDep, runtime: RuntimeDep
) -> VodOut:
    """Retitle a recording or set who may watch it: `public`, `subscribers` (the channel's
    paid-up subscribers) or `private` (the owner); its media follows at once (its clips keep
    playing: they get their own copy of the segments first)."""
    media = media_of(runtime)
    async with session.begin():
        vod = await vods.update_vod(
            session,
            actor=user,
            vod=await vods.get_vod(session, vod_id),
            data=data,
            store=media.store,
            hooks=runtime.before_vod_media_withdrawn,
        )
        out = vods.present_vod(vod)
    media.forget_open_media(vod.stream_id)
    return out


@router.delete(
    "/vods/{vod_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def delete_vod(
    vod_id: uuid.UUID, user: CurrentUser, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """Delete a recording and its media (the owner or an admin); its clips keep theirs."""
    media = media_of(runtime)
    async with session.begin():
        vod = await vods.get_vod(session, vod_id)
        channels.ensure_owner(user, await session.get_one(Channel, vod.channel_id))
        stream_id = vod.stream_id
        prefix = await vods.remove_vod(
            session, vod=vod, store=media.store, hooks=runtime.before_vod_media_withdrawn
        )
    media.forget_open_media(stream_id)
    await vods.remove_media(media.store, prefix)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/vods/{vod_id}/progress", responses=problem_responses(401, 403, 404))
async def get_progress(
    vod_id: uuid.UUID, user: CurrentUser, session: ReadSessionDep
) -> ProgressOut:
    """Where the caller stopped watching (0 and no `updated_at` if they have not)."""
    async with session.begin():
        vod = await vods.watchable_vod(session, vod_id, user)
        return await vods.get_progress(session, viewer=user, vod=vod)


@router.post("/vods/{vod_id}/progress", responses=problem_responses(401, 403, 404, 422))
async def save_progress(
    vod_id: uuid.UUID, data: ProgressIn, user: CurrentUser, session: SessionDep
) -> ProgressOut:
    """Save where the caller is (seconds from the start, at most the recording's duration)."""
    async with session.begin():
        vod = await vods.watchable_vod(session, vod_id, user)
        return await vods.save_progress(
            session, viewer=user, vod=vod, position_seconds=data.position_seconds
        )


@router.post(
    "/vods/{vod_id}/report",
    status_code=status.HTTP_201_CREATED,
    dependencies=[_report_limit],
    responses={
        200: {
            "model": ReportOut,
            "description": "Merged into the caller's pending report of this recording",
        },
        **problem_responses(401, 403, 404, 422, 429),
    },
)
async def report_vod(
    vod_id: uuid.UUID,
    data: ReportCreate,
    user: CurrentUser,
    session: SessionDep,
    response: Response,
) -> ReportOut:
    """Report a recording to the moderators (reason from the fixed list, details optional).
    Reporting it again while the first report is pending adds to that one (200)."""
    async with session.begin():
        vod = await vods.watchable_vod(session, vod_id, user)
        report, created = await vods.report_vod(session, reporter=user, vod=vod, data=data)
        out = reports.present_report(report)
    if not created:
        response.status_code = status.HTTP_200_OK
    return out


@router.get("/vods/{vod_id}/chat", responses=problem_responses(403, 404, 422))
async def chat_replay(
    vod_id: uuid.UUID,
    viewer: OptionalUser,
    session: ReadSessionDep,
    page: PageDep,
    start: Annotated[
        float | None, Query(alias="from", ge=0, description="seconds into the recording")
    ] = None,
    end: Annotated[
        float | None, Query(alias="to", ge=0, description="seconds into the recording")
    ] = None,
) -> Page[ReplayMessage]:
    """The stream's chat from `from` to `to` seconds into the recording, oldest first, each
    message with `offset_seconds` (deleted, cleared and purged messages left out)."""
    async with session.begin():
        vod = await vods.watchable_vod(session, vod_id, viewer)
        rows, cursor = await vods.chat_replay(session, vod=vod, start=start, end=end, params=page)
    return make_page(rows, cursor)


@router.post(
    "/vods/{vod_id}/previews",
    responses={
        202: {
            "model": VodOut,
            "description": "The previews are being drawn; the VOD shows them once made",
        },
        **problem_responses(403, 404),
    },
)
async def request_previews(
    vod_id: uuid.UUID,
    viewer: OptionalUser,
    session: SessionDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
    response: Response,
) -> VodOut:
    """Seek previews on demand (recordings from before they existed, or a failed attempt):
    200 with the VOD when it has them, else 202 while they are drawn."""
    async with session.begin():
        vod = await vods.watchable_vod(session, vod_id, viewer)
        out = vods.present_vod(vod)
    if out.previews_url is None:
        background.add_task(jobs.make_previews, runtime, vod_id)
        response.status_code = status.HTTP_202_ACCEPTED
    return out


@router.get("/channels/{channel_ref}/vods", responses=problem_responses(404, 422))
async def list_channel_vods(
    channel_ref: str, viewer: OptionalUser, session: ReadSessionDep, page: PageDep
) -> Page[VodOut]:
    """A channel's recordings the caller may watch, newest first (by slug or id)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_ref)
        rows, cursor = await vods.list_channel_vods(
            session, channel=channel, viewer=viewer, params=page
        )
        return make_page([vods.present_vod(v) for v in rows], cursor)
