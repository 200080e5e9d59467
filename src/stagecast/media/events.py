"""Browser ingest over Socket.IO, seed 004's protocol: `start-stream`, binary `stream-data`,
`end-stream`; answered with `stream-started`, `stream-error {error, streamKey, code}`,
`stream-ended` (and the usual acks).

A socket's events are handled in the order it sent them (RealtimeServer.on), so chunks sent
right behind `start-stream` wait for it, and never overtake one another. While it publishes,
the socket also gets its channel's seed 004 events (`viewer-joined`, `viewer-left`,
`stream-segments-updated`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog

from stagecast.errors import AppError, ValidationFailed
from stagecast.media.ingest import BrowserPublish
from stagecast.media.service import AlreadyPublishing, LiveMedia, MediaRejected
from stagecast.realtime.dialects import Dialect, DialectName, seed004_stream_key, stream_error
from stagecast.realtime.server import ErrorEvent, RealtimeServer, SocketUser

log = structlog.get_logger(__name__)


class NotBroadcasting(AppError):
    status, code, title = 409, "NOT_BROADCASTING", "This socket is not broadcasting"


def _stream_key(data: Any) -> str | None:
    if not isinstance(data, dict):
        raise ValidationFailed("The event payload must be an object")
    key = data.get("streamKey", data.get("stream_key"))
    if key is not None and (not isinstance(key, str) or len(key) > 256):
        raise ValidationFailed("streamKey must be a string")
    return key or None


@dataclass(eq=False)
class Publisher:
    """One socket's browser publish."""

    publish: BrowserPublish
    user: SocketUser
    feeding: asyncio.Lock = field(default_factory=asyncio.Lock)
    watchdog: asyncio.Task[None] | None = None

    @property
    def channel_id(self) -> uuid.UUID:
        return self.publish.broadcast.channel_id


class BrowserIngest:
    """The browser publishers of one app, by socket."""

    def __init__(self, server: RealtimeServer, media: LiveMedia) -> None:
        self.server = server
        self.media = media
        self.publishing: dict[str, Publisher] = {}

    def error_event(self, *, invalid: str) -> ErrorEvent:
        """Tell a refusal as seed 004's `stream-error` (`invalid`: what a bad payload means)."""

        async def tell(sid: str, data: Any, error: AppError) -> None:
            key = seed004_stream_key(data)
            publisher = self.publishing.get(sid)
            if key is None and publisher is not None:
                key = publisher.publish.stream_key
            await self.tell_error(sid, key, error, invalid=invalid)

        return tell

    async def tell_error(self, sid: str, key: str | None, error: AppError, *, invalid: str) -> None:
        told = stream_error(error, stream_key=key, invalid=invalid)
        await self.server.sio.emit("stream-error", told, to=sid)

    async def start(self, sid: str, user: SocketUser, data: Any) -> dict[str, Any]:
        key = _stream_key(data)
        if sid in self.publishing:
            raise AlreadyPublishing("This socket is already broadcasting; end-stream first")

        async def disconnect(reason: str) -> None:
            publisher = self.publishing.pop(sid, None)
            if publisher is not None:
                await self._forget(sid, publisher)
                ended = {"streamKey": key, "reason": reason}
                await self.server.sio.emit("stream-ended", ended, to=sid)

        broadcast = await self.media.claim(
            kind="browser",
            disconnect=disconnect,
            stream_key=key,
            owner_id=None if key else user.user_id,
        )
        if not self.server.sio.manager.is_connected(sid, "/"):  # the tab left meanwhile
            await self.media.release(broadcast, clean=False)
            return {}
        publisher = Publisher(BrowserPublish(self.media, broadcast, key), user)
        self.publishing[sid] = publisher
        publisher.watchdog = asyncio.create_task(self._watch(sid, publisher))
        # Its own key only ever comes back to the broadcaster itself.
        dialect = Dialect(DialectName.SEED004, stream_key=key, broadcaster=True)
        await self.server.follow_as_broadcaster(sid, user, broadcast.channel_id, dialect)
        started = {
            "streamKey": key,
            "status": "broadcasting",
            "channel_id": str(broadcast.channel_id),
        }
        await self.server.sio.emit("stream-started", started, to=sid)
        return started

    async def data(self, sid: str, _user: SocketUser, payload: Any) -> dict[str, Any]:
        _stream_key(payload)
        publisher = self.publishing.get(sid)
        if publisher is None:
            raise NotBroadcasting("Send start-stream first (or the stream has ended)")
        chunk = payload.get("chunk")
        if not isinstance(chunk, (bytes, bytearray)) or not chunk:
            raise ValidationFailed("chunk must be binary WebM data")
        try:
            async with publisher.feeding:
                await publisher.publish.feed(bytes(chunk))
        except MediaRejected:
            await self.stop(sid, clean=True)
            raise
        stream_id = publisher.publish.broadcast.stream_id
        return {"received": len(chunk), "stream_id": str(stream_id) if stream_id else None}

    async def end(self, sid: str, _user: SocketUser, payload: Any) -> dict[str, Any]:
        key = _stream_key(payload) if payload is not None else None
        if sid not in self.publishing:
            raise NotBroadcasting()
        await self.stop(sid, clean=True)
        await self.server.sio.emit("stream-ended", {"streamKey": key, "reason": "ended"}, to=sid)
        return {}

    async def _watch(self, sid: str, publisher: Publisher) -> None:
        """Drop a tab that keeps its socket but stops sending (the reconnect window runs)."""
        timeout = self.media.settings.publisher_timeout_seconds
        publish = publisher.publish
        while self.publishing.get(sid) is publisher:
            await asyncio.sleep(min(timeout, 1.0))
            if time.monotonic() - publish.last_chunk_at > timeout:
                log.info("browser_publisher_silent", sid=sid, seconds=timeout)
                # Dropped first, then told: the tab sees the state it is told about.
                await self.stop(sid, clean=False)
                error = MediaRejected(f"No media for {timeout:g} s; the broadcast was dropped")
                await self.tell_error(sid, publish.stream_key, error, invalid="MEDIA_ERROR")
                return

    async def stop(self, sid: str, *, clean: bool) -> None:
        publisher = self.publishing.pop(sid, None)
        if publisher is None:
            return
        await self._forget(sid, publisher)
        async with publisher.feeding:  # let a chunk being fed finish first
            pass
        await self.media.release(publisher.publish.broadcast, clean=clean)

    async def _forget(self, sid: str, publisher: Publisher) -> None:
        watchdog = publisher.watchdog
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
        await self.server.unfollow_as_broadcaster(sid, publisher.user, publisher.channel_id)

    async def gone(self, sid: str) -> None:
        await self.stop(sid, clean=False)  # a dropped tab may come back within the window


def register(server: RealtimeServer, media: LiveMedia) -> BrowserIngest:
    ingest = BrowserIngest(server, media)
    server.on("start-stream", error_event=ingest.error_event(invalid="UNAUTHORIZED"))(ingest.start)
    server.on("stream-data", error_event=ingest.error_event(invalid="MEDIA_ERROR"))(ingest.data)
    server.on("end-stream", error_event=ingest.error_event(invalid="STREAM_NOT_FOUND"))(ingest.end)
    server.disconnect_listeners.append(ingest.gone)
    return ingest
