"""Browser ingest over Socket.IO, seed 004's protocol: `start-stream`, binary `stream-data`,
`end-stream`; answered with `stream-started`, `stream-error {error, code}`, `stream-ended`
(and the usual acks)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from stagecast.errors import AppError, ValidationFailed
from stagecast.media.ingest import BrowserPublish
from stagecast.media.service import LiveMedia, MediaRejected
from stagecast.realtime.server import RealtimeServer, SocketUser

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


class BrowserIngest:
    """The browser publishers of one app, by socket."""

    def __init__(self, server: RealtimeServer, media: LiveMedia) -> None:
        self.server = server
        self.media = media
        self.publishing: dict[str, BrowserPublish] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.watchdogs: dict[str, asyncio.Task[None]] = {}

    async def answer_error(self, sid: str, key: str | None, error: AppError) -> None:
        payload = {"error": error.detail, "code": error.code, "streamKey": key}
        await self.server.sio.emit("stream-error", payload, to=sid)

    async def start(self, sid: str, user: SocketUser, data: Any) -> dict[str, Any]:
        key = None
        try:
            key = _stream_key(data)
            if sid in self.publishing:
                raise MediaRejected("This socket is already broadcasting; end-stream first")

            async def disconnect(reason: str) -> None:
                publish = self.publishing.pop(sid, None)
                if publish is not None:
                    ended = {"streamKey": key, "reason": reason}
                    await self.server.sio.emit("stream-ended", ended, to=sid)

            broadcast = await self.media.claim(
                kind="browser",
                disconnect=disconnect,
                stream_key=key,
                owner_id=None if key else user.user_id,
            )
        except AppError as error:
            await self.answer_error(sid, key, error)
            raise
        publish = BrowserPublish(self.media, broadcast, key)
        self.publishing[sid] = publish
        self.locks[sid] = asyncio.Lock()
        self.watchdogs[sid] = asyncio.create_task(self._watch(sid, publish))
        started = {
            "streamKey": key,
            "status": "broadcasting",
            "channel_id": str(broadcast.channel_id),
        }
        await self.server.sio.emit("stream-started", started, to=sid)
        return started

    async def data(self, sid: str, _user: SocketUser, payload: Any) -> dict[str, Any]:
        key = None
        try:
            key = _stream_key(payload)
            publish = self.publishing.get(sid)
            if publish is None:
                raise NotBroadcasting("Send start-stream first (or the stream has ended)")
            chunk = payload.get("chunk")
            if not isinstance(chunk, (bytes, bytearray)) or not chunk:
                raise ValidationFailed("chunk must be binary WebM data")
            async with self.locks[sid]:  # chunks are fed in the order they came
                await publish.feed(bytes(chunk))
        except AppError as error:
            if isinstance(error, MediaRejected) and sid in self.publishing:
                await self.stop(sid, clean=True)
            await self.answer_error(sid, key, error)
            raise
        stream_id = publish.broadcast.stream_id
        return {"received": len(chunk), "stream_id": str(stream_id) if stream_id else None}

    async def end(self, sid: str, _user: SocketUser, payload: Any) -> dict[str, Any]:
        key = _stream_key(payload) if payload is not None else None
        if sid not in self.publishing:
            error = NotBroadcasting()
            await self.answer_error(sid, key, error)
            raise error
        await self.stop(sid, clean=True)
        await self.server.sio.emit("stream-ended", {"streamKey": key, "reason": "ended"}, to=sid)
        return {}

    async def _watch(self, sid: str, publish: BrowserPublish) -> None:
        """Drop a tab that keeps its socket but stops sending (the reconnect window runs)."""
        timeout = self.media.settings.publisher_timeout_seconds
        while self.publishing.get(sid) is publish:
            await asyncio.sleep(min(timeout, 1.0))
            if time.monotonic() - publish.last_chunk_at > timeout:
                log.info("browser_publisher_silent", sid=sid, seconds=timeout)
                # Dropped first, then told: the tab sees the state it is told about.
                await self.stop(sid, clean=False)
                error = MediaRejected(f"No media for {timeout:g} s; the broadcast was dropped")
                await self.answer_error(sid, publish.stream_key, error)
                return

    async def stop(self, sid: str, *, clean: bool) -> None:
        publish = self.publishing.pop(sid, None)
        lock = self.locks.pop(sid, None)
        watchdog = self.watchdogs.pop(sid, None)
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
        if publish is None:
            return
        if lock is not None:
            async with lock:  # let a chunk being fed finish first
                pass
        await self.media.release(publish.broadcast, clean=clean)

    async def gone(self, sid: str) -> None:
        await self.stop(sid, clean=False)  # a dropped tab may come back within the window


def register(server: RealtimeServer, media: LiveMedia) -> BrowserIngest:
    ingest = BrowserIngest(server, media)
    server.on("start-stream")(ingest.start)
    server.on("stream-data")(ingest.data)
    server.on("end-stream")(ingest.end)
    server.disconnect_listeners.append(ingest.gone)
    return ingest
