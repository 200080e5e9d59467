"""HTTP routes of clips: make, read, edit, delete, like, count views, list, trending, media."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.deps import CurrentUser, OptionalUser
from stagecast.accounts.models import User
from stagecast.admin import flags
from stagecast.channels import service as channels
from stagecast.clips import service as clips
from stagecast.clips.jobs import ClipRenderer
from stagecast.clips.schemas import (
    ClipCreate,
    ClipOut,
    ClipPeriod,
    ClipSort,
    ClipUpdate,
    LikeState,
    ViewState,
)
from stagecast.db.base import utcnow
from stagecast.deps import PageDep, ReadSessionDep, RuntimeDep, SessionDep, client_ip
from stagecast.errors import ServiceUnavailable, problem_responses
from stagecast.media.routes import serve_media_file
from stagecast.media.service import media_of
from stagecast.pagination import Page, make_page
from stagecast.runtime import Runtime

router = APIRouter(tags=["clips"])
media_router = APIRouter(tags=["clips"])


def renderer_of(runtime: Runtime) -> ClipRenderer:
    if runtime.clips is None:
        raise ServiceUnavailable("Clips are not running")
    return runtime.clips


async def _present(session: AsyncSession, clip_id: uuid.UUID, user: User | None) -> ClipOut:
    clip = await clips.get_clip(session, clip_id)
    return (await clips.present_clips(session, [clip], viewer=user))[0]


@router.post(
    "/clips",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 404, 409, 422, 429),
)
async def create_clip(
    data: ClipCreate, runtime: RuntimeDep, session: ReadSessionDep, user: CurrentUser
) -> ClipOut:
    """Clip a live stream (the last `duration` seconds, `offset` seconds behind the live
    edge) or a recording (from `start`). The answer's `playlist_url` plays at once (HLS over
    the recorded segments); `mp4_url` appears when the MP4 is rendered (`mp4_state`)."""
    await flags.require(runtime, "clips")
    clip_id = await clips.make_clip(runtime, user=user, data=data)
    renderer_of(runtime).submit(clip_id)
    async with session.begin():
        return await _present(session, clip_id, user)


@router.get("/clips/trending", responses=problem_responses(422))
async def trending_clips(
    session: ReadSessionDep, page: PageDep, user: OptionalUser
) -> Page[ClipOut]:
    """The platform's clips of the last week by a time-decayed score over views and likes
    (docs/media.md gives the formula)."""
    async with session.begin():
        rows, info = await clips.trending_clips(session, params=page, now=utcnow())
        return make_page(await clips.present_clips(session, rows, viewer=user), info)


@router.get("/clips/{clip_id}", responses=problem_responses(404))
async def get_clip(clip_id: uuid.UUID, session: ReadSessionDep, user: OptionalUser) -> ClipOut:
    """A clip: where it plays (HLS now, MP4 once rendered), its counts."""
    async with session.begin():
        return await _present(session, clip_id, user)


@router.patch("/clips/{clip_id}", responses=problem_responses(401, 403, 404, 422))
async def update_clip(
    clip_id: uuid.UUID,
    data: ClipUpdate,
    runtime: RuntimeDep,
    session: SessionDep,
    user: CurrentUser,
) -> ClipOut:
    """Retitle or trim a clip (`start`/`end` in seconds of its original range); a trim
    rewrites its playlist and renders its MP4 again. The clipper or the channel's owner."""
    async with session.begin():
        clip = await clips.get_clip(session, clip_id)
        changed = await clips.update_clip(session, actor=user, clip=clip, data=data)
        plan = clips.ClipMediaPlan.of(clip)
    if changed:
        await clips.write_clip_playlists(media_of(runtime).store, plan)
        renderer_of(runtime).submit(clip_id)
    async with session.begin():
        return await _present(session, clip_id, user)


@router.delete(
    "/clips/{clip_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def delete_clip(
    clip_id: uuid.UUID, runtime: RuntimeDep, session: SessionDep, user: CurrentUser
) -> Response:
    """Delete a clip and its files: the clipper, the channel's owner and moderators, staff."""
    async with session.begin():
        clip = await clips.get_clip(session, clip_id)
        await clips.delete_clip(session, actor=user, clip=clip)
    await media_of(runtime).store.delete_prefix(f"{clips.clip_prefix(clip_id)}/")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/clips/{clip_id}/like", responses=problem_responses(401, 404))
async def like_clip(clip_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> LikeState:
    """Like a clip (again: no change)."""
    async with session.begin():
        clip = await clips.get_clip(session, clip_id)
        return await clips.like_clip(session, user=user, clip=clip, like=True)


@router.delete("/clips/{clip_id}/like", responses=problem_responses(401, 404))
async def unlike_clip(clip_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> LikeState:
    """Take a like back (none given: no change)."""
    async with session.begin():
        clip = await clips.get_clip(session, clip_id)
        return await clips.like_clip(session, user=user, clip=clip, like=False)


@router.post("/clips/{clip_id}/views", responses=problem_responses(404))
async def count_clip_view(
    clip_id: uuid.UUID,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    user: OptionalUser,
) -> ViewState:
    """A player started the clip: counted once per viewer (account, else address) an hour."""
    if user is not None:
        viewer = f"user:{user.id}"
    else:
        viewer = "ip:" + runtime.secrets.lookup_hash("clip-viewer", client_ip(request))[:64]
    async with session.begin():
        clip = await clips.get_clip(session, clip_id)
        return await clips.count_view(session, clip=clip, viewer=viewer, now=utcnow())


@router.get("/channels/{channel_ref}/clips", responses=problem_responses(404, 422))
async def list_channel_clips(
    channel_ref: str,
    session: ReadSessionDep,
    page: PageDep,
    user: OptionalUser,
    sort: Annotated[ClipSort, Query(description="views, likes or recent")] = "views",
    period: Annotated[ClipPeriod, Query(description="made within: day, week, month, all")] = "all",
) -> Page[ClipOut]:
    """A channel's clips (by slug or id)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_ref)
        rows, info = await clips.list_channel_clips(
            session, channel=channel, sort=sort, period=period, params=page, now=utcnow()
        )
        return make_page(await clips.present_clips(session, rows, viewer=user), info)


@media_router.get("/hls/clips/{clip_id}/{path:path}", responses=problem_responses(404, 416, 422))
@media_router.head("/hls/clips/{clip_id}/{path:path}", include_in_schema=False)
async def clip_file(
    clip_id: uuid.UUID, path: str, request: Request, runtime: RuntimeDep
) -> Response:
    """A clip's files: `master.m3u8`, `<rendition>/index.m3u8`, its copied segments, the MP4
    and thumbnail (`clip_v<n>.mp4`, `thumbnail_v<n>.jpg`). Range requests are answered."""
    return await serve_media_file(request, runtime, f"{clips.clip_prefix(clip_id)}/{path}")
