"""Delivery: HLS playlists, segments and thumbnails from the media store, and seed 004's
`/livestream/...` endpoints (status, active streams, health, start/stop, debug)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.deps import CurrentUser, OptionalUser
from stagecast.accounts.models import Role, User
from stagecast.channels import service as channels
from stagecast.channels.models import Channel
from stagecast.channels.schemas import Description
from stagecast.db.base import utcnow
from stagecast.deps import ReadSessionDep, RuntimeDep, SessionDep
from stagecast.errors import (
    AppError,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
    problem_responses,
)
from stagecast.health import service as health
from stagecast.media.packager import PLAYLIST_NAME
from stagecast.media.pipeline import MASTER_PLAYLIST, media_prefix
from stagecast.media.playlists import parse_part_uri
from stagecast.media.service import LiveMedia, media_of
from stagecast.media.store import InvalidMediaKey, MediaNotFound, validate_key
from stagecast.pagination import MAX_LIMIT, PageParams
from stagecast.ratelimit import rate_limit
from stagecast.realtime.bus import channel_room
from stagecast.runtime import Runtime
from stagecast.streams import service as streams
from stagecast.streams.models import Stream, StreamStatus
from stagecast.streams.schemas import StreamUpdate, Title
from stagecast.urls import rtmp_server_url
from stagecast.vods import service as vods

router = APIRouter(tags=["media"])

# Seed 004's limits per IP, by kind of `/livestream` route (docs/media.md); /hls is not limited.
_status_limit = Depends(rate_limit("livestream_status", per="ip"))
_general_limit = Depends(rate_limit("livestream_general", per="ip"))
_stream_limit = Depends(rate_limit("livestream_stream", per="ip"))

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt; charset=utf-8",
}
PLAYLIST_CACHE = "no-cache"
SEGMENT_CACHE = "public, max-age=31536000, immutable"
# A redirect to a presigned URL must not be reused past the URL's expiry; a minute is plenty
# for players (each segment is asked for a few times at most).
_REDIRECT_CACHE = "public, max-age=60"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class RangeNotSatisfiable(AppError):
    status, code, title = 416, "RANGE_NOT_SATISFIABLE", "The requested range is not satisfiable"


class PlaylistRequestTooFar(AppError):
    status, code = 400, "PLAYLIST_REQUEST_TOO_FAR"
    title = "The requested segment is too far beyond the live edge"


class PlaylistNotReady(ServiceUnavailable):
    code, title = "PLAYLIST_NOT_READY", "The requested segment did not arrive in time"


class InvalidLivestreamRequest(AppError):
    # Seed 004 answers bad parameters with 400, not our usual 422.
    status, code, title = 400, "INVALID_REQUEST", "Invalid request parameters"


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) of a single `bytes=` range, None for the whole file; 416 if unusable."""
    found = _RANGE.fullmatch(header.strip())
    if found is None:
        return None  # several ranges or another unit: RFC 9110 lets us send it all
    first, last = found.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, end


async def _serve(request: Request, runtime: Runtime, key: str) -> Response:
    suffix = key[key.rfind(".") :] if "." in key else ""
    content_type = CONTENT_TYPES.get(suffix)
    if content_type is None:
        raise NotFound("No such media file")
    try:
        validate_key(key)
    except InvalidMediaKey as error:
        raise NotFound("No such media file") from error
    store = media_of(runtime).store
    immutable = suffix in {".m4s", ".mp4"}
    if immutable and (location := await store.playback_url(key)) is not None:
        # A segment, part or MP4 from the bucket or CDN itself (S3 with redirects on);
        # playlists and thumbnails, which change, are always answered here.
        headers = {"Cache-Control": _REDIRECT_CACHE}
        return RedirectResponse(location, status_code=302, headers=headers)
    headers = {
        "Cache-Control": SEGMENT_CACHE if immutable else PLAYLIST_CACHE,
        "Accept-Ranges": "bytes",  # CORS: OpenCorsMiddleware, on every /hls and /livestream answer
    }
    try:
        size = await store.size(key)
        wanted = _byte_range(request.headers.get("range", ""), size)
        if request.method == "HEAD":
            headers["Content-Length"] = str(size)
            return Response(status_code=200, media_type=content_type, headers=headers)
        if wanted is None:
            return Response(await store.read(key), media_type=content_type, headers=headers)
        start, end = wanted
        body = await store.read_range(key, start, end + 1)
    except MediaNotFound as error:
        raise NotFound("No such media file") from error
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(body, status_code=206, media_type=content_type, headers=headers)


_HLS_RESPONSES = problem_responses(400, 401, 403, 404, 416, 422, 503)


async def _ensure_media_access(
    runtime: Runtime, session: AsyncSession, viewer: User | None, stream_id: uuid.UUID
) -> None:
    """A recording's visibility holds for its files too: a subscribers-only or private
    VOD's playlists, segments and thumbnails answer as the VOD itself does (403/404)."""
    media = media_of(runtime)
    if media.media_is_open(stream_id):
        return
    async with session.begin():
        hidden = await vods.stream_media_visibility(session, stream_id)
        if hidden is not None:
            await vods.ensure_watchable(session, hidden, viewer)
            return  # who may watch depends on the caller: not remembered
    media.remember_open_media(stream_id)


async def serve_media_file(request: Request, runtime: Runtime, key: str) -> Response:
    """Answer a stored media file as /hls does (types, caching, ranges), for other domains'
    media (clips)."""
    return await _serve(request, runtime, key)


async def _wait_for_live_media(
    media: LiveMedia, stream_id: uuid.UUID, path: str, msn: int | None, part: int | None
) -> None:
    """Low-Latency HLS: hold a blocking playlist reload, or a request for the hinted part,
    until the packager has it (RFC 8216bis 6.2.5.2 and 6.2.6)."""
    if part is not None and msn is None:
        raise ValidationFailed("_HLS_part is only allowed with _HLS_msn")
    rendition, _, name = path.rpartition("/")
    packager = media.packager(stream_id, rendition)
    if packager is None:
        return  # not live on this node: the store has all there will be
    timeout = 3 * packager.target_duration
    if msn is not None and name == PLAYLIST_NAME:
        if msn > packager.expected_sequence() + 2:
            raise PlaylistRequestTooFar
        try:
            async with asyncio.timeout(timeout):
                await packager.wait_for_playlist(msn, part)
        except TimeoutError as error:
            raise PlaylistNotReady from error
    elif (wanted := parse_part_uri(name)) is not None:
        # A part that never comes (the hint guessed wrong) is a 404 from the store below.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await packager.wait_for_part(*wanted)


@router.get("/hls/{stream_id}/{path:path}", responses=_HLS_RESPONSES)
@router.head("/hls/{stream_id}/{path:path}", include_in_schema=False)
async def hls_file(
    stream_id: uuid.UUID,
    path: str,
    request: Request,
    runtime: RuntimeDep,
    session: ReadSessionDep,
    viewer: OptionalUser,
    msn: Annotated[int | None, Query(alias="_HLS_msn", ge=0)] = None,
    part: Annotated[int | None, Query(alias="_HLS_part", ge=0)] = None,
) -> Response:
    """A stream's HLS files: `master.m3u8`, `<rendition>/index.m3u8` (live) or `vod.m3u8`,
    init and media segments, partial segments, `thumbnail.jpg`. Range requests are answered.

    Live playlists are Low-Latency HLS: `_HLS_msn` (and `_HLS_part`) block until the playlist
    lists that segment (part), and the part a preload hint names is held until it is stored.
    A recording that is not public needs the credentials that may watch it (Authorization).
    """
    await _ensure_media_access(runtime, session, viewer, stream_id)
    await _wait_for_live_media(media_of(runtime), stream_id, path, msn, part)
    return await _serve(request, runtime, f"{media_prefix(stream_id)}/{path}")


# --- seed 004 --------------------------------------------------------------------------------


def livestream_id(raw: str) -> uuid.UUID:
    """A `/livestream/{id}` path's stream id: anything but a stream's UUID is no stream."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise streams.StreamNotFound(f"No stream '{raw[:64]}'") from None


class LivestreamBody(BaseModel):
    """Seed 004's start/stop body; `userId` and `timestamp` are taken and ignored (the caller's
    credentials and our clock decide)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    user_id: str | int | None = Field(default=None, alias="userId")
    timestamp: float | None = None


class LivestreamStart(LivestreamBody):
    action: Literal["start"]
    title: Title | None = None
    description: Description | None = None


class LivestreamStop(LivestreamBody):
    action: Literal["stop"]


Action = TypeVar("Action", LivestreamStart, LivestreamStop)


def _action_body(model: type[Action], data: Any, action: str) -> Action:
    """The body, or a 400 problem (seed 004's status for bad parameters) naming the fields."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(str(p) for p in e["loc"]) or "body",
                "in": "body",
                "message": e["msg"],
                "type": e["type"],
            }
            for e in exc.errors()
        ]
        raise InvalidLivestreamRequest(
            f'The body must be an object with "action": "{action}"', errors=errors
        ) from exc


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    # The body is read as any JSON so that a wrong one is seed 004's 400, not FastAPI's 422.
    schema = model.model_json_schema(by_alias=True)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _broadcast_summary(media: LiveMedia, stream: Stream) -> dict[str, Any]:
    broadcast = media.by_stream(stream.id)
    return {
        "streamId": str(stream.id),
        "status": broadcast.state if broadcast else stream.status,
        "startedAt": stream.started_at.isoformat() if stream.started_at else None,
        "isActive": stream.status == StreamStatus.LIVE.value,
        "viewers": stream.viewer_count,
        "playbackUrl": f"/hls/{stream.id}/{MASTER_PLAYLIST}",
        "hasFfmpegCommand": bool(broadcast and broadcast.pipeline and broadcast.pipeline.running),
        "hasInputStream": bool(broadcast and broadcast.disconnect is not None),
    }


@router.get("/livestream/active", dependencies=[_general_limit], responses=problem_responses(429))
async def active_streams(session: ReadSessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Streams on air, as seed 004 lists them."""
    media = media_of(runtime)
    async with session.begin():
        rows, _ = await streams.list_streams(
            session, params=PageParams(limit=MAX_LIMIT, cursor=None), live_only=True
        )
        found = [
            {**_broadcast_summary(media, s), "userId": str(await _owner_id(session, s))}
            for s in rows
        ]
    return {"count": len(found), "streams": found}


async def _viewers_now(runtime: Runtime, channel_id: uuid.UUID) -> int:
    if runtime.realtime is None:
        return 0
    return await runtime.realtime.presence.count(channel_room(channel_id))


@router.get("/livestream/health", dependencies=[_status_limit], responses=problem_responses(429))
async def livestream_health(runtime: RuntimeDep, user: OptionalUser) -> dict[str, Any]:
    """The media side's health: the store, live broadcasts and their viewers, memory."""
    media = media_of(runtime)
    root = runtime.settings.data_dir / "media"
    broadcasts = [
        {
            "streamKey": str(b.stream_id) if b.stream_id else None,  # never the secret key
            "userId": str(b.owner_id),
            "startedAt": b.went_live_at.isoformat() if b.went_live_at else None,
            "state": b.state,
            "viewers": await _viewers_now(runtime, b.channel_id),
            "hasFfmpegCommand": bool(b.pipeline and b.pipeline.running),
            "hasInputStream": b.disconnect is not None,
        }
        for b in list(media.broadcasts.values())  # a copy: broadcasts may end during the awaits
    ]
    healthy = all(not (b.pipeline and b.pipeline.failed) for b in media.broadcasts.values())
    admin = user is not None and user.role_enum is Role.ADMIN
    ffmpeg_pids = [
        pid for b in media.broadcasts.values() if b.pipeline and (pid := b.pipeline.ffmpeg_pid)
    ]
    return {
        "status": "healthy" if healthy else "unhealthy",
        "timestamp": utcnow().isoformat(),
        "streamsDirectory": {"exists": root.is_dir(), "path": str(root) if admin else "media"},
        "activeStreams": {"count": len(broadcasts), "streams": broadcasts},
        "memoryUsage": health.memory_usage(ffmpeg_pids),
    }


async def _stream_and_channel(
    session: AsyncSession, stream_id: uuid.UUID
) -> tuple[Stream, Channel]:
    stream = await streams.get_stream(session, stream_id)
    return stream, await session.get_one(Channel, stream.channel_id)


async def _owner_id(session: AsyncSession, stream: Stream) -> uuid.UUID:
    channel = await session.get_one(Channel, stream.channel_id)
    return channel.owner_id


def _is_owner_or_admin(user: User | None, channel: Channel) -> bool:
    return user is not None and (user.id == channel.owner_id or user.role_enum is Role.ADMIN)


@router.get(
    "/livestream/{stream_id}/status",
    dependencies=[_status_limit],
    responses=problem_responses(404, 429),
)
async def stream_status(
    stream_id: str, session: ReadSessionDep, runtime: RuntimeDep, user: OptionalUser
) -> dict[str, Any]:
    """Seed 004's status; the file list and playlist text only for the owner or an admin."""
    media = media_of(runtime)
    async with session.begin():
        stream, channel = await _stream_and_channel(session, livestream_id(stream_id))
    prefix = media_prefix(stream.id)
    files = await media.store.list_keys(f"{prefix}/")
    master = f"{prefix}/{MASTER_PLAYLIST}"
    has_master = master in files
    summary = _broadcast_summary(media, stream)
    local: dict[str, Any] = {
        "isActive": summary["isActive"],
        "state": summary["status"],
        "manifestExists": has_master,
        "streamDirExists": bool(files),
        "streamData": {
            "userId": str(channel.owner_id),
            "startedAt": summary["startedAt"],
            "viewers": stream.viewer_count,
            "hasFfmpegCommand": summary["hasFfmpegCommand"],
            "hasInputStream": summary["hasInputStream"],
        },
    }
    if _is_owner_or_admin(user, channel):
        local["files"] = [f.removeprefix(f"{prefix}/") for f in files]
        local["manifestContent"] = (await media.store.read(master)).decode() if has_master else None
    return {
        "streamId": str(stream.id),
        "local": local,
        "overall": {
            "isActive": summary["isActive"],
            "hasManifest": has_master,
            "hasStreamDir": bool(files),
            "hasVideoContent": any(f.endswith(".m4s") for f in files),
        },
    }


@router.post(
    "/livestream/{stream_id}/start",
    dependencies=[_general_limit],
    responses=problem_responses(400, 401, 403, 404, 409, 429),
    openapi_extra=_body_schema(LivestreamStart),
)
async def start_stream(
    stream_id: str,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    user: CurrentUser,
    data: Annotated[Any, Body(include_in_schema=False)] = None,
) -> dict[str, Any]:
    """Get a stream ready for its publisher: where to send media and where it will play.

    The stream goes live when media arrives (RTMP or the browser), not on this call; `title`
    and `description` are applied to it. An ended stream cannot start again (409)."""
    body = _action_body(LivestreamStart, data, "start")
    async with session.begin():
        stream, _ = await _stream_and_channel(session, livestream_id(stream_id))
        live = await streams.ready_stream(session, actor=user, stream=stream)
        changes = body.model_dump(include={"title", "description"}, exclude_none=True)
        if changes:
            await streams.update_stream(
                session, actor=user, stream=stream, data=StreamUpdate(**changes)
            )
    return {
        "status": "already_exists" if live else "created_and_started",
        "streamId": str(stream.id),
        "message": "The stream is live" if live else "Publish to the ingest URL to go live",
        "playbackUrl": f"/hls/{stream.id}/{MASTER_PLAYLIST}",
        "ingestUrl": rtmp_server_url(request, runtime),
        "timestamp": utcnow().isoformat(),
    }


@router.post(
    "/livestream/{stream_id}/stop",
    dependencies=[_general_limit],
    responses=problem_responses(400, 401, 403, 404, 429),
    openapi_extra=_body_schema(LivestreamStop),
)
async def stop_stream(
    stream_id: str,
    session: SessionDep,
    runtime: RuntimeDep,
    user: CurrentUser,
    data: Annotated[Any, Body(include_in_schema=False)] = None,
) -> dict[str, Any]:
    """End a live stream now: its publisher is disconnected and its recording kept."""
    _action_body(LivestreamStop, data, "stop")
    async with session.begin():
        stream, channel = await _stream_and_channel(session, livestream_id(stream_id))
        channels.ensure_owner(user, channel)
    stopped = await media_of(runtime).end_stream(stream.id, reason="stopped by the owner")
    return {
        "status": "stopped" if stopped else "already_stopped",
        "streamId": str(stream.id),
        "message": "The stream has ended" if stopped else "The stream was not live",
        "timestamp": utcnow().isoformat(),
    }


@router.get(
    "/livestream/{stream_id}/debug",
    dependencies=[_status_limit],
    responses=problem_responses(401, 403, 404, 429),
)
async def debug_stream(
    stream_id: str, session: ReadSessionDep, runtime: RuntimeDep, user: CurrentUser
) -> dict[str, Any]:
    """The stream's files and master playlist (its owner or an admin only)."""
    media = media_of(runtime)
    async with session.begin():
        stream, channel = await _stream_and_channel(session, livestream_id(stream_id))
        channels.ensure_owner(user, channel)
    prefix = media_prefix(stream.id)
    files = [f.removeprefix(f"{prefix}/") for f in await media.store.list_keys(f"{prefix}/")]
    manifest = ""
    if MASTER_PLAYLIST in files:
        manifest = (await media.store.read(f"{prefix}/{MASTER_PLAYLIST}")).decode()
    segments = [f for f in files if f.endswith(".m4s")]
    return {
        "streamId": str(stream.id),
        "streamPath": prefix,
        "m3u8Path": f"{prefix}/{MASTER_PLAYLIST}",
        "manifestExists": bool(manifest),
        "manifestContent": manifest,
        "manifestLines": len(manifest.splitlines()),
        "segmentsInManifest": manifest.count("#EXT-X-STREAM-INF"),
        "segmentFiles": segments,
        "segmentFilesCount": len(segments),
        "allFiles": files,
        "broadcast": _broadcast_internals(media, stream),
        "timestamp": utcnow().isoformat(),
    }


def _broadcast_internals(media: LiveMedia, stream: Stream) -> dict[str, Any] | None:
    """What the pipeline of a stream on air is doing (None when it is not on this node)."""
    broadcast = media.by_stream(stream.id)
    if broadcast is None:
        return None
    pipeline = broadcast.pipeline
    return {
        "state": broadcast.state,
        "ingest": broadcast.kind,
        "reconnects": broadcast.reconnects,
        "renditions": [r.name for r in pipeline.renditions] if pipeline else [],
        # The source's keyframes, what the creator is told of them, and whether the top
        # rendition passes the source through or re-encodes it.
        "health": broadcast.health.payload() if broadcast.health else None,
        "passthrough": bool(pipeline and pipeline.renditions[0].copy_video),
        "keyframeIntervals": {
            name: packager.keyframe_interval for name, packager in pipeline.packagers.items()
        }
        if pipeline
        else {},
        "ffmpegRestarts": pipeline.restarts if pipeline else 0,
        "bytesIn": pipeline.bytes_in if pipeline else 0,
        "segments": pipeline.segment_count if pipeline else 0,
    }


@router.get(
    "/livestream/{stream_id}/{path:path}",
    dependencies=[_stream_limit],
    responses=problem_responses(401, 403, 404, 416, 429),
)
@router.head(
    "/livestream/{stream_id}/{path:path}", dependencies=[_stream_limit], include_in_schema=False
)
async def livestream_file(
    stream_id: str,
    path: str,
    request: Request,
    runtime: RuntimeDep,
    session: ReadSessionDep,
    viewer: OptionalUser,
) -> Response:
    """Seed 004's playback paths: `stream.m3u8` is the master playlist, the rest as /hls."""
    name = MASTER_PLAYLIST if path == "stream.m3u8" else path
    found = livestream_id(stream_id)
    await _ensure_media_access(runtime, session, viewer, found)
    return await _serve(request, runtime, f"{media_prefix(found)}/{name}")
