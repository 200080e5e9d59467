"""HTTP routes of streams and stream keys (with seed 003's `/live/streams` names)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from stagecast.accounts.deps import CurrentUser, SessionPrincipal
from stagecast.cache import ResponseCache
from stagecast.channels import service as channels
from stagecast.channels.models import Channel
from stagecast.deps import PageDep, ReadSessionDep, RuntimeDep, SessionDep
from stagecast.errors import problem_responses
from stagecast.media.keyframes import recommended_keyframe_interval
from stagecast.pagination import Page, make_page
from stagecast.ratelimit import rate_limit
from stagecast.realtime.bus import DomainEvent
from stagecast.runtime import Runtime
from stagecast.streams import service as streams
from stagecast.streams.models import StreamKey, StreamStatus
from stagecast.streams.schemas import (
    BrowserIngest,
    EncoderAdvice,
    StreamCreate,
    StreamHealthOut,
    StreamKeyOut,
    StreamOut,
    StreamUpdate,
    ViewerCount,
)

_streaming_limit = Depends(rate_limit("streaming"))
router = APIRouter(prefix="/streams", tags=["streams"])
live_router = APIRouter(prefix="/live/streams", tags=["streams"])

_WRITE = problem_responses(401, 403, 404, 409, 422)


def _key_out(request: Request, runtime: Runtime, raw: str, stored: StreamKey) -> StreamKeyOut:
    settings = runtime.settings
    port = runtime.rtmp_port or settings.rtmp_port  # the bound port when settings say 0
    server = settings.rtmp_public_url or (
        f"rtmp://{request.url.hostname or settings.host}:{port}/live"
    )
    return StreamKeyOut(
        stream_key=raw,
        rtmp_server=server,
        rtmp_url=f"{server.rstrip('/')}/{raw}",
        browser_ingest=BrowserIngest(
            socket_path="/socket.io", start_event="start-stream", data_event="stream-data"
        ),
        channel_id=stored.channel_id,
        created_at=stored.created_at,
        encoder=_encoder_advice(runtime),
        stream_health=_health_of(runtime, stored.channel_id),
    )


def _encoder_advice(runtime: Runtime) -> EncoderAdvice:
    media = runtime.settings.media
    return EncoderAdvice(
        keyframe_interval_seconds=recommended_keyframe_interval(
            media.segment_seconds, media.max_keyframe_seconds
        ),
        max_keyframe_interval_seconds=media.max_keyframe_seconds,
    )


def _health_of(runtime: Runtime, channel_id: uuid.UUID) -> StreamHealthOut | None:
    broadcast = runtime.media.broadcasts.get(channel_id) if runtime.media else None
    if broadcast is None or broadcast.health is None or broadcast.ended.is_set():
        return None
    return StreamHealthOut.model_validate(broadcast.health.payload())


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[_streaming_limit],
    responses=problem_responses(401, 422, 429),
)
@live_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[_streaming_limit],
    responses=problem_responses(401, 422, 429),
)
async def create_stream(body: StreamCreate, user: CurrentUser, session: SessionDep) -> StreamOut:
    """Create or schedule a stream on your channel (made for you if you have none)."""
    async with session.begin():
        stream = await streams.create_stream(session, owner=user, data=body)
        return await streams.present_stream(session, stream)


@router.get("", responses=problem_responses(422))
async def list_live_streams(session: ReadSessionDep, page: PageDep) -> Page[StreamOut]:
    """Live streams, most watched first (seed 002's `GET /streams`)."""
    async with session.begin():
        rows, cursor = await streams.list_streams(session, params=page, live_only=True)
        return make_page(await streams.present_streams(session, rows), cursor)


@router.patch("/{stream_id}", dependencies=[_streaming_limit], responses=_WRITE)
@live_router.put("/{stream_id}", dependencies=[_streaming_limit], responses=_WRITE)
async def update_stream(
    stream_id: uuid.UUID, body: StreamUpdate, user: CurrentUser, session: SessionDep
) -> StreamOut:
    """Change a stream's title, category, tags… (owner or admin)."""
    async with session.begin():
        stream = await streams.get_stream(session, stream_id)
        stream = await streams.update_stream(session, actor=user, stream=stream, data=body)
        return await streams.present_stream(session, stream)


@router.delete("/{stream_id}", dependencies=[_streaming_limit], responses=_WRITE)
async def end_stream(stream_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Response:
    """End a live stream (200 with it), or cancel a scheduled one (204)."""
    async with session.begin():
        stream = await streams.get_stream(session, stream_id)
        ended = await streams.end_or_cancel_stream(session, actor=user, stream=stream)
        if ended is None:
            return Response(status_code=status.HTTP_204_NO_CONTENT)
        out = await streams.present_stream(session, ended)
    return Response(out.model_dump_json(), media_type="application/json")


@router.get("/{stream_id}/viewers", responses=problem_responses(404))
async def stream_viewers(stream_id: uuid.UUID, session: ReadSessionDep) -> ViewerCount:
    """A stream's current and peak viewer counts."""
    async with session.begin():
        stream = await streams.get_stream(session, stream_id)
    return ViewerCount(
        stream_id=stream.id,
        status=StreamStatus(stream.status),
        viewer_count=stream.viewer_count,
        peak_viewer_count=stream.peak_viewer_count,
    )


@live_router.get("", responses=problem_responses(422))
async def list_streams(
    session: ReadSessionDep,
    page: PageDep,
    is_live: Annotated[bool | None, Query(description="only live streams")] = None,
) -> Page[StreamOut]:
    """Live streams (`?is_live=true`), or live and scheduled ones, as seed 003 lists them."""
    async with session.begin():
        rows, cursor = await streams.list_streams(session, params=page, live_only=bool(is_live))
        return make_page(await streams.present_streams(session, rows), cursor)


@live_router.get("/me", responses=problem_responses(401))
async def my_streams(user: CurrentUser, session: SessionDep, page: PageDep) -> Page[StreamOut]:
    """Your streams, newest first."""
    async with session.begin():
        channel = await channels.channel_of_owner(session, user.id)
        if channel is None:
            return make_page([], None)
        rows, cursor = await streams.list_channel_streams(
            session, channel=channel, params=page, status=None
        )
        return make_page(await streams.present_streams(session, rows), cursor)


@live_router.get("/me/key", responses=problem_responses(401, 403))
async def my_stream_key(
    request: Request,
    response: Response,
    principal: SessionPrincipal,
    session: SessionDep,
    runtime: RuntimeDep,
) -> StreamKeyOut:
    """Your stream key and where to send media (your channel is made if you have none).

    Needs a signed-in session: API keys cannot read stream keys.
    """
    async with session.begin():
        channel: Channel = await channels.ensure_channel(session, owner=principal.user)
        raw, stored = await streams.get_stream_key(session, runtime.secrets, channel=channel)
    response.headers["Cache-Control"] = "no-store"
    return _key_out(request, runtime, raw, stored)


@live_router.post(
    "/me/key/regenerate",
    dependencies=[_streaming_limit],
    responses=problem_responses(401, 403, 429),
)
async def regenerate_stream_key(
    request: Request,
    response: Response,
    principal: SessionPrincipal,
    session: SessionDep,
    runtime: RuntimeDep,
) -> StreamKeyOut:
    """Replace your stream key; the old one stops working at once."""
    async with session.begin():
        channel = await channels.ensure_channel(session, owner=principal.user)
        raw, stored = await streams.regenerate_stream_key(session, runtime.secrets, channel=channel)
    if runtime.media is not None:
        # Whoever publishes with the old key is cut off now, not at their next reconnect.
        await runtime.media.disconnect_channel(channel.id, reason="the stream key was regenerated")
    response.headers["Cache-Control"] = "no-store"
    return _key_out(request, runtime, raw, stored)


# Declared after `/me…`: a path parameter would otherwise swallow `me`.
@router.get("/{stream_id}", response_model=StreamOut, responses=problem_responses(404))
@live_router.get("/{stream_id}", response_model=StreamOut, responses=problem_responses(404))
async def get_stream(stream_id: uuid.UUID, request: Request, runtime: RuntimeDep) -> Response:
    """A stream, in any state."""

    async def render() -> bytes:
        async with runtime.db.read_session() as session, session.begin():
            stream = await streams.get_stream(session, stream_id)
            return (await streams.present_stream(session, stream)).model_dump_json().encode()

    return await runtime.response_cache.serve_request(request, render)


def forget_cached_pages(cache: ResponseCache) -> Callable[[DomainEvent], None]:
    """Drop a stream's cached page, and every browse page, when a stream event commits."""

    def forget(event: DomainEvent) -> None:
        if event.name.startswith("stream:"):
            stream_id = event.payload["stream_id"]
            cache.forget(
                lambda key: (
                    str(key[0]).endswith(f"/streams/{stream_id}") or key[0] == "/api/v1/browse"
                )
            )

    return forget
