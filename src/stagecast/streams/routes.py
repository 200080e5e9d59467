"""HTTP routes of streams and stream keys (with seed 003's `/live/streams` names)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from stagecast.accounts.deps import (
    CurrentPrincipal,
    CurrentUser,
    OptionalPrincipal,
    OptionalUser,
    SessionPrincipal,
)
from stagecast.accounts.models import User
from stagecast.accounts.security import CHAT_TOKEN_TTL
from stagecast.cache import ResponseCache
from stagecast.channels import service as channels
from stagecast.channels.models import Channel
from stagecast.deps import PageDep, ReadSessionDep, RuntimeDep, SessionDep
from stagecast.errors import PermissionDenied, problem_responses
from stagecast.media.keyframes import recommended_keyframe_interval
from stagecast.media.pipeline import MASTER_PLAYLIST
from stagecast.media.service import media_of
from stagecast.moderation import service as moderation
from stagecast.pagination import MAX_LIMIT, Page, PageInfo, make_page
from stagecast.ratelimit import rate_limit
from stagecast.realtime.bus import DomainEvent
from stagecast.runtime import Runtime
from stagecast.streams import service as streams
from stagecast.streams.models import StreamKey, StreamStatus
from stagecast.streams.schemas import (
    BrowserIngest,
    EncoderAdvice,
    IceServer,
    OwnStreamOut,
    PlaybackUrls,
    StreamCreate,
    StreamHealthOut,
    StreamJoinOut,
    StreamKeyOut,
    StreamOut,
    StreamStartOut,
    StreamUpdate,
    ViewerCount,
    ViewerList,
    ViewerSocket,
    WebRtcEndpoint,
)
from stagecast.urls import http_url, rtmp_server_url

_streaming_limit = Depends(rate_limit("streaming"))
router = APIRouter(prefix="/streams", tags=["streams"])
live_router = APIRouter(prefix="/live/streams", tags=["streams"])

_WRITE = problem_responses(401, 403, 404, 409, 422)


def _key_out(request: Request, runtime: Runtime, raw: str, stored: StreamKey) -> StreamKeyOut:
    server = rtmp_server_url(request, runtime)
    return StreamKeyOut(
        stream_key=raw,
        rtmp_server=server,
        rtmp_url=f"{server.rstrip('/')}/{raw}",
        browser_ingest=BrowserIngest(
            socket_path="/socket.io",
            start_event="start-stream",
            data_event="stream-data",
            end_event="end-stream",
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
    stream_id: uuid.UUID,
    body: StreamUpdate,
    user: CurrentUser,
    session: SessionDep,
    runtime: RuntimeDep,
) -> StreamOut:
    """Change a stream's title, category, tags… (owner or admin); `status: ended` ends it."""
    async with session.begin():
        stream = await streams.get_stream(session, stream_id)
        stream = await streams.update_stream(session, actor=user, stream=stream, data=body)
    if body.status is not None:
        await media_of(runtime).end_stream(stream_id, reason="ended by the owner")
    async with session.begin():
        await session.refresh(stream)
        return await streams.present_stream(session, stream)


@router.delete("/{stream_id}", dependencies=[_streaming_limit], responses=_WRITE)
async def end_stream(
    stream_id: uuid.UUID, user: CurrentUser, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """End a live stream (200 with it, once its publisher is cut and its recording stored),
    or cancel a scheduled one (204). Owner or admin."""
    async with session.begin():
        stream = await streams.get_stream(session, stream_id)
        if not await streams.cancel_or_allow_end(session, actor=user, stream=stream):
            return Response(status_code=status.HTTP_204_NO_CONTENT)
    await media_of(runtime).end_stream(stream_id, reason="ended by the owner")
    async with session.begin():
        await session.refresh(stream)
        out = await streams.present_stream(session, stream)
    return Response(out.model_dump_json(), media_type="application/json")


@router.post(
    "/{stream_id}/start",
    dependencies=[_streaming_limit],
    responses=problem_responses(401, 403, 404, 409, 429),
)
async def start_stream(
    stream_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: SessionPrincipal,
    session: SessionDep,
    runtime: RuntimeDep,
) -> StreamStartOut:
    """Seed 002: ready your stream for its publisher, and where to send media (RTMP or the
    browser; WebRTC is not there yet). It goes live when media arrives, as this stream.

    The answer holds your stream key: the owner's signed-in session only, never an API key.
    """
    async with session.begin():
        stream = await streams.get_stream(session, stream_id)
        channel = await session.get_one(Channel, stream.channel_id)
        if channel.owner_id != principal.user.id:
            raise PermissionDenied("Only the stream's owner can start it")
        live = await streams.ready_stream(session, actor=principal.user, stream=stream)
        raw, stored = await streams.get_stream_key(session, runtime.secrets, channel=channel)
    response.headers["Cache-Control"] = "no-store"
    return StreamStartOut(
        **_key_out(request, runtime, raw, stored).model_dump(),
        stream_id=stream.id,
        status=StreamStatus(stream.status),
        already_live=live,
        playback_url=http_url(request, runtime, f"/hls/{stream.id}/{MASTER_PLAYLIST}"),
        webrtc=WebRtcEndpoint(protocol="whip"),
    )


@router.post("/{stream_id}/join", responses=problem_responses(401, 404, 409))
async def join_stream(
    stream_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: OptionalPrincipal,
    session: SessionDep,
    runtime: RuntimeDep,
) -> StreamJoinOut:
    """Seed 002: join a stream as a viewer, signed in or not: where it plays, and a viewer token
    for the socket that carries chat and live events (signed-in sessions)."""
    user = principal.user if principal else None
    # Anonymous joins write nothing: they need not queue for SQLite's write lock.
    opened = runtime.db.read_session() if user is None else contextlib.nullcontext(session)
    async with opened as db, db.begin():
        stream = await streams.get_stream(db, stream_id)
        await streams.record_viewer(db, stream=stream, user=user)
    token, expires_in = None, None
    if principal is not None and principal.session_id is not None:
        token, _ = runtime.tokens.issue_chat_token(
            user_id=principal.user.id, session_id=principal.session_id, role=principal.user.role
        )
        expires_in = int(CHAT_TOKEN_TTL.total_seconds())
        response.headers["Cache-Control"] = "no-store"
    return StreamJoinOut(
        stream_id=stream.id,
        channel_id=stream.channel_id,
        status=StreamStatus(stream.status),
        is_live=stream.status == StreamStatus.LIVE.value,
        viewer_count=stream.viewer_count,
        playback=PlaybackUrls(
            master_playlist=http_url(request, runtime, f"/hls/{stream.id}/{MASTER_PLAYLIST}"),
            low_latency=runtime.settings.media.low_latency,
            livestream_playlist=http_url(request, runtime, f"/livestream/{stream.id}/stream.m3u8"),
            thumbnail=http_url(request, runtime, f"/hls/{stream.id}/thumbnail.jpg"),
        ),
        viewer_token=token,
        viewer_token_expires_in=expires_in,
        socket=ViewerSocket(join_payload={"streamId": str(stream.id)}),
        ice_servers=list[IceServer](),
        webrtc=WebRtcEndpoint(protocol="whep"),
    )


@router.get(
    "/{stream_id}/viewers",
    response_model=ViewerList | ViewerCount,
    responses=problem_responses(401, 404, 422),
)
async def stream_viewers(
    stream_id: uuid.UUID,
    session: ReadSessionDep,
    runtime: RuntimeDep,
    viewer: OptionalUser,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT * 10)] = MAX_LIMIT,
) -> ViewerCount:
    """A stream's current and peak viewer counts; for its owner and the channel's moderators
    also the signed-in viewers in its room now (latest joiners first)."""
    async with session.begin():
        stream = await streams.get_stream(session, stream_id)
        counts = ViewerCount(
            stream_id=stream.id,
            status=StreamStatus(stream.status),
            viewer_count=stream.viewer_count,
            peak_viewer_count=stream.peak_viewer_count,
        )
        channel = await session.get_one(Channel, stream.channel_id)
        if viewer is None or runtime.realtime is None:
            return counts
        role = await moderation.channel_role(session, channel, viewer)
        if role is moderation.ChannelRole.VIEWER:
            return counts
        present = await runtime.realtime.signed_in_viewers(channel.id)
        viewers, more = await streams.list_viewers(
            session, stream=stream, user_ids=present, limit=limit
        )
    return ViewerList(**counts.model_dump(), viewers=viewers, has_more=more)


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
async def my_streams(
    principal: CurrentPrincipal,
    response: Response,
    session: SessionDep,
    runtime: RuntimeDep,
    page: PageDep,
) -> Page[OwnStreamOut]:
    """Your streams, newest first, each with the channel's stream key (seed 003).

    As with `/me/key`, the key is for a signed-in session: through an API key it is null.
    """
    response.headers["Cache-Control"] = "no-store"
    async with session.begin():
        channel = await channels.channel_of_owner(session, principal.user.id)
        if channel is None:
            return make_page([], PageInfo(page, next_cursor=None, total=0))
        rows, cursor = await streams.list_channel_streams(
            session, channel=channel, params=page, status=None
        )
        found = None
        if not principal.via_api_key and rows:
            found = await streams.find_stream_key(session, runtime.secrets, channel=channel)
            if found is None:
                found = await _make_key(runtime, principal.user.id)
        shown = await streams.present_streams(session, rows)
    key = found[0] if found is not None else None
    return make_page(
        [OwnStreamOut(**stream.model_dump(), stream_key=key) for stream in shown], cursor
    )


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
        channel = await channels.channel_of_owner(session, principal.user.id)
        found = (
            await streams.find_stream_key(session, runtime.secrets, channel=channel)
            if channel is not None
            else None
        )
    raw, stored = found if found is not None else await _make_key(runtime, principal.user.id)
    response.headers["Cache-Control"] = "no-store"
    return _key_out(request, runtime, raw, stored)


async def _make_key(runtime: Runtime, owner_id: uuid.UUID) -> tuple[str, StreamKey]:
    """Make the channel and key a GET found missing (first use only), in a short write
    transaction of their own: the GET's own transaction is read-only."""
    async with runtime.db.session() as writer, writer.begin():
        owner = await writer.get_one(User, owner_id)
        channel = await channels.ensure_channel(writer, owner=owner)
        return await streams.get_stream_key(writer, runtime.secrets, channel=channel)


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
