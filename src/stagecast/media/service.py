"""Live broadcasts on this node: who publishes, their pipelines, reconnect windows, the end.

An ingest (RTMP or the browser) claims a channel with its stream key, tells what it sends,
then feeds bytes. The first publish puts the channel's stream on air (the channels issue's
`mark_stream_live`); a publisher that drops leaves the stream "reconnecting" for the channel's
reconnect window, and one that comes back within it continues the same stream and recording.
When the window passes (or the publisher stops cleanly) the stream ends and its recording
becomes a VOD.

Every way a stream ends goes through `end_stream`. Streams whose node is gone (killed, or
restarted) are ended from what they stored (media/recovery.py), by this node at start and on
every heartbeat (media/nodes.py); a stream another live node packages is ended there.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from cachetools import TTLCache
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.admin import flags, maintenance
from stagecast.channels import service as channels
from stagecast.channels.models import Channel
from stagecast.db.base import utcnow
from stagecast.errors import AppError, Conflict, NotFound, ServiceUnavailable
from stagecast.health.service import find_ffmpeg
from stagecast.kyc import service as kyc
from stagecast.media.keyframes import StreamHealth
from stagecast.media.ladder import InputFormat, placeholder_thumbnail_args
from stagecast.media.nodes import NodeRegistry, Orphan
from stagecast.media.packager import Packager, RecordingSummary
from stagecast.media.pipeline import (
    MASTER_PLAYLIST,
    THUMBNAIL,
    LivePipeline,
    PipelineConfig,
    SourceInfo,
    media_prefix,
)
from stagecast.media.playlists import RecordedSpan, recorded_spans
from stagecast.media.recovery import close_stored_stream
from stagecast.media.store import MediaNotFound, MediaStore
from stagecast.realtime.bus import channel_room
from stagecast.runtime import Runtime
from stagecast.streams import service as streams
from stagecast.streams.models import Stream, StreamStatus
from stagecast.vods import service as vods

log = structlog.get_logger(__name__)

Disconnect = Callable[[str], Awaitable[None]]
END_COMMAND = "media.end"
# How long a node takes a stream's media to be open to everyone (no recording hides it)
# without asking the database again; a visibility change on another node shows within it.
OPEN_MEDIA_SECONDS = 2.0
# How long ending a stream packaged by another node may take before the answer gives up.
REMOTE_END_SECONDS = 20.0


class MediaRejected(AppError):
    status, code, title = 422, "MEDIA_REJECTED", "The media cannot be accepted"


class AlreadyPublishing(Conflict):
    code, title = "STREAM_ALREADY_PUBLISHING", "Someone is already publishing to this channel"


class TooManyStreams(ServiceUnavailable):
    code, title = "TOO_MANY_STREAMS", "This server runs as many live streams as it may"


class StreamOnAnotherNode(ServiceUnavailable):
    code, title = "STREAM_ON_ANOTHER_NODE", "Another node runs this stream and did not end it"


@dataclass(eq=False)
class Broadcast:
    """One channel on air (or about to be) on this node."""

    channel_id: uuid.UUID
    owner_id: uuid.UUID
    reconnect_window: float
    recording: bool
    kind: str  # "rtmp" | "browser": the current (or last) publisher's ingest
    disconnect: Disconnect | None  # None while no publisher is connected
    stream_id: uuid.UUID | None = None
    pipeline: LivePipeline | None = None
    went_live_at: datetime | None = None
    reconnects: int = 0
    ending: asyncio.Task[None] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # set when ending begins
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # set once all is stored
    health: StreamHealth | None = None  # what the RTMP ingest learnt of the source

    @property
    def state(self) -> str:
        if self.ended.is_set():
            return "ended"
        if self.pipeline is None:
            return "starting"
        return "live" if self.disconnect is not None else "reconnecting"


def media_of(runtime: Runtime) -> LiveMedia:
    """Return the app's live media (create_app builds it; a bare runtime has none)."""
    if runtime.media is None:
        raise NotFound("Live media is not running")
    return runtime.media


class LiveMedia:
    """Every broadcast of this node, and the store their media goes to."""

    def __init__(self, runtime: Runtime, store: MediaStore) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.media
        self.store = store
        self.broadcasts: dict[uuid.UUID, Broadcast] = {}
        # Broadcasts being ended, by channel: their recordings are still being finished.
        self.finishing: dict[uuid.UUID, Broadcast] = {}
        self.nodes = NodeRegistry(runtime.settings)
        self._sweeper: asyncio.Task[None] | None = None
        self._ffmpeg: str | None = None
        self._placeholder: bytes | None = None
        self._open_media: TTLCache[uuid.UUID, bool] = TTLCache(
            maxsize=20_000, ttl=OPEN_MEDIA_SECONDS
        )

    async def start(self) -> None:
        """Join the nodes: end what a previous run of this node (or a gone node) left live,
        before any publisher can come back, then keep heartbeating and sweeping."""
        if self.runtime.cluster is not None:
            self.runtime.cluster.on(END_COMMAND, self._end_if_here)
        try:
            await self.nodes.heartbeat(self.runtime.db)
            await self.sweep(first=True)
        except Exception:
            # A database not migrated yet (readiness says so) or away: the node still
            # starts, and its heartbeat tries again.
            log.exception("media_node_start_failed")
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="media-nodes")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.node_heartbeat_seconds)
            try:
                await self.nodes.heartbeat(self.runtime.db)
                await self.sweep(first=False)
                await self.nodes.forget_gone(self.runtime.db)
            except Exception:
                log.exception("media_node_sweep_failed")

    async def sweep(self, *, first: bool) -> int:
        """End the live streams whose pipeline is gone; return how many were ended."""
        held = set(self.broadcasts) | set(self.finishing)
        orphans = await self.nodes.orphans(self.runtime.db, held=held, include_unowned=first)
        ended = 0
        for orphan in orphans:
            if orphan.channel_id in self.broadcasts or orphan.channel_id in self.finishing:
                continue  # a publisher took the channel since the look
            try:
                ended += await self.recover(orphan, reason="its node is gone")
            except Exception:
                log.exception("stream_recovery_failed", stream_id=str(orphan.stream_id))
        return ended

    @property
    def ffmpeg(self) -> str:
        if self._ffmpeg is None:
            found = find_ffmpeg(self.runtime.settings.ffmpeg_path)
            if found is None:
                raise ServiceUnavailable("ffmpeg was not found; live media cannot start")
            self._ffmpeg = found
        return self._ffmpeg

    async def placeholder_thumbnail(self) -> bytes:
        """Return the JPEG that stands in for a stream's thumbnail until its first frame."""
        if self._placeholder is None:
            process = await asyncio.create_subprocess_exec(
                *placeholder_thumbnail_args(self.ffmpeg),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            data, errors = await process.communicate()
            if process.returncode or not data:
                raise ServiceUnavailable(f"ffmpeg could not draw a thumbnail: {errors[-300:]!r}")
            self._placeholder = data
        return self._placeholder

    def media_is_open(self, stream_id: uuid.UUID) -> bool:
        """Whether this node lately found the stream's files open to everyone."""
        return stream_id in self._open_media

    def remember_open_media(self, stream_id: uuid.UUID) -> None:
        self._open_media[stream_id] = True

    def forget_open_media(self, stream_id: uuid.UUID) -> None:
        """A recording's visibility changed (or it was deleted): ask the database again."""
        self._open_media.pop(stream_id, None)

    def packager(self, stream_id: uuid.UUID, rendition: str) -> Packager | None:
        """Return the packager of a rendition live on this node, if any."""
        broadcast = self.by_stream(stream_id)
        if broadcast is None or broadcast.pipeline is None:
            return None
        return broadcast.pipeline.packagers.get(rendition)

    def by_stream(self, stream_id: uuid.UUID) -> Broadcast | None:
        """Return the broadcast of a stream on this node (on air, or being finished)."""
        for broadcast in (*self.broadcasts.values(), *self.finishing.values()):
            if broadcast.stream_id == stream_id:
                return broadcast
        return None

    # --- publishing ---

    async def claim(
        self,
        *,
        kind: str,
        disconnect: Disconnect,
        stream_key: str | None = None,
        owner_id: uuid.UUID | None = None,
    ) -> Broadcast:
        """Take a channel for a publisher: by its stream key, or as its signed-in owner."""
        async with self.runtime.db.session() as session, session.begin():
            if stream_key is not None:
                channel = await streams.verify_stream_key(session, self.runtime.secrets, stream_key)
            else:
                found = await channels.channel_of_owner(session, owner_id) if owner_id else None
                if found is None:
                    raise streams.StreamKeyRejected("Send your stream key, or sign in as the owner")
                channel = found
            options = channels.settings_of(channel)
            await kyc.require_verified(
                session, self.runtime.settings.kyc, user_id=channel.owner_id, action="going_live"
            )
        finishing = self.finishing.get(channel.id)
        if finishing is not None:
            # The last stream is still being stored: the next one starts after it, never
            # on top of it.
            await finishing.finished.wait()
        broadcast = self.broadcasts.get(channel.id)
        if broadcast is not None and not broadcast.ended.is_set():
            if broadcast.disconnect is not None:
                raise AlreadyPublishing()
            if broadcast.ending is not None:
                broadcast.ending.cancel()
                broadcast.ending = None
            broadcast.kind, broadcast.disconnect = kind, disconnect
            broadcast.reconnects += 1
            log.info("publisher_reconnected", channel_id=str(channel.id), kind=kind)
            return broadcast
        # A new broadcast (a publisher coming back within its window continues its stream):
        # refused during maintenance, and from browsers while their flag is off.
        await maintenance.refuse_new_broadcast(self.runtime)
        if kind == "browser":
            await flags.require(self.runtime, "browser_broadcasting")
        live = sum(1 for b in self.broadcasts.values() if not b.ended.is_set())
        if live >= self.settings.max_pipelines:
            raise TooManyStreams()
        await self._settle_previous(channel.id)
        broadcast = Broadcast(
            channel_id=channel.id,
            owner_id=channel.owner_id,
            reconnect_window=float(options.reconnect_window_seconds),
            recording=options.recording_enabled,
            kind=kind,
            disconnect=disconnect,
        )
        self.broadcasts[channel.id] = broadcast
        return broadcast

    async def _settle_previous(self, channel_id: uuid.UUID) -> None:
        """Before a new broadcast: a stream still live in the database is another node's
        (its publisher is on air there: refused) or a gone node's (ended from what it stored,
        so that the new broadcast is a new stream and never writes over the old one)."""
        async with self.runtime.db.read_session() as session, session.begin():
            previous = await session.scalar(
                select(Stream).where(
                    Stream.channel_id == channel_id, Stream.status == StreamStatus.LIVE.value
                )
            )
        if previous is None:
            return
        if await self._runs_elsewhere(previous):
            raise AlreadyPublishing("This channel is live on another node")
        await self.recover(
            Orphan(previous.id, channel_id, None), reason="its publisher came back to a new node"
        )

    def check_source(self, source: SourceInfo) -> None:
        """Refuse what the settings do not allow, before any ffmpeg starts."""
        short_side = min(source.width or 0, source.height or 0)
        if short_side > self.settings.max_input_height:
            raise MediaRejected(
                f"{source.width}x{source.height} is over this server's limit of "
                f"{self.settings.max_input_height}p"
            )
        if source.video_bitrate and source.video_bitrate > self.settings.max_input_bitrate:
            raise MediaRejected(
                f"{source.video_bitrate // 1000} kb/s is over this server's limit of "
                f"{self.settings.max_input_bitrate // 1000} kb/s"
            )

    async def go_live(
        self,
        broadcast: Broadcast,
        *,
        input_format: InputFormat,
        source: SourceInfo,
        began_at: datetime | None = None,
    ) -> LivePipeline:
        """Start (or, after a reconnect, continue) the broadcast's pipeline; `began_at`: when
        the media it is given first began arriving (the stream's start), if not now."""
        self.check_source(source)
        if broadcast.pipeline is not None:
            await broadcast.pipeline.reconnected(input_format=input_format, source=source)
            await self._emit(broadcast, "stream:resumed", {})
            return broadcast.pipeline
        placeholder = await self.placeholder_thumbnail()
        async with self.runtime.db.session() as session, session.begin():
            channel = await session.get_one(Channel, broadcast.channel_id)
            stream, _ = await streams.mark_stream_live(
                session, channel=channel, node_id=self.nodes.id, now=began_at
            )
            broadcast.stream_id = stream.id
            started_at = stream.started_at or utcnow()
        # Browse cards show the thumbnail as soon as the stream is live: never a missing image.
        await self.store.write(f"{media_prefix(stream.id)}/{THUMBNAIL}", placeholder)
        broadcast.went_live_at = started_at
        config = PipelineConfig(
            ffmpeg=self.ffmpeg,
            work_dir=self.runtime.settings.data_dir / "work" / str(stream.id),
            segment_seconds=self.settings.segment_seconds,
            part_seconds=self.settings.part_seconds if self.settings.low_latency else None,
            dvr_window_seconds=self.settings.dvr_window_seconds,
            ladder=list(self.settings.ladder),
            thumbnail_seconds=self.settings.thumbnail_seconds,
            recording=broadcast.recording,
            reencode_long_gops=self.settings.reencode_long_gops,
        )

        async def segments_changed(count: int) -> None:
            await self._emit(broadcast, "stream:segments", {"segment_count": count})

        async def failed(reason: str) -> None:
            await self.drop_publisher(broadcast, reason=f"the media pipeline failed: {reason}")
            await self.end(broadcast, reason="pipeline failed")

        pipeline = LivePipeline(
            stream_id=str(stream.id),
            input_format=input_format,
            source=source,
            store=self.store,
            config=config,
            started_at=started_at,
            on_segments=segments_changed,
            on_failed=failed,
        )
        broadcast.pipeline = pipeline
        await pipeline.start()
        log.info(
            "broadcast_started",
            stream_id=str(stream.id),
            renditions=[r.name for r in pipeline.renditions],
            source=f"{source.video_codec} {source.width}x{source.height}",
        )
        return pipeline

    async def drop_publisher(self, broadcast: Broadcast, *, reason: str) -> None:
        """Disconnect the broadcast's publisher (a regenerated key, a failed pipeline)."""
        disconnect, broadcast.disconnect = broadcast.disconnect, None
        if disconnect is not None:
            with contextlib.suppress(Exception):
                await disconnect(reason)

    async def release(self, broadcast: Broadcast, *, clean: bool) -> None:
        """The publisher is gone: end now (a clean stop) or after the reconnect window."""
        broadcast.disconnect = None
        if broadcast.ended.is_set():
            return
        if broadcast.pipeline is None:  # never went live
            if self.broadcasts.get(broadcast.channel_id) is broadcast:
                del self.broadcasts[broadcast.channel_id]
            broadcast.ended.set()
            broadcast.finished.set()
            return
        if clean or broadcast.reconnect_window <= 0 or self.runtime.shutting_down:
            await self.end(broadcast, reason="publisher stopped" if clean else "publisher lost")
            return
        await self._emit(
            broadcast, "stream:reconnecting", {"reconnect_window": broadcast.reconnect_window}
        )
        if broadcast.ending is None:
            broadcast.ending = asyncio.create_task(self._end_after_window(broadcast))

    async def _end_after_window(self, broadcast: Broadcast) -> None:
        await asyncio.sleep(broadcast.reconnect_window)
        broadcast.ending = None
        if broadcast.disconnect is None:
            await self.end(broadcast, reason="reconnect window passed")

    async def end_stream(self, stream_id: uuid.UUID, *, reason: str) -> bool:
        """End a stream, whoever asks: the owner (DELETE, PATCH, `/livestream/{id}/stop`),
        an admin, the publisher (`end-stream`). The one way a stream ends; returns False
        when it had already ended (or was never live)."""
        broadcast = self.by_stream(stream_id)
        if broadcast is not None:
            ending_now = not broadcast.ended.is_set()
            await self.end(broadcast, reason=reason)
            return ending_now
        async with self.runtime.db.read_session() as session, session.begin():
            stream = await streams.get_stream(session, stream_id)
        if stream.status != StreamStatus.LIVE.value:
            return False
        if await self._runs_elsewhere(stream):
            return await self._end_elsewhere(stream_id, reason=reason)
        return await self.recover(Orphan(stream_id, stream.channel_id, utcnow()), reason=reason)

    async def _runs_elsewhere(self, stream: Stream) -> bool:
        """Whether another node that is still running packages this live stream."""
        node_id = stream.node_id
        if node_id is None or node_id == self.nodes.id:
            return False
        return await self.nodes.alive(self.runtime.db, node_id)

    async def _end_elsewhere(self, stream_id: uuid.UUID, *, reason: str) -> bool:
        """Ask the node packaging a stream to end it, and wait until it has."""
        cluster = self.runtime.cluster
        if cluster is None or not cluster.distributed:
            raise StreamOnAnotherNode(
                "This stream runs on another node; nodes reach each other through Redis "
                "(STAGECAST_REDIS_URL)"
            )
        await cluster.send(END_COMMAND, {"stream_id": str(stream_id), "reason": reason})
        async with asyncio.timeout(REMOTE_END_SECONDS):
            while True:
                async with self.runtime.db.read_session() as session, session.begin():
                    status = await session.scalar(
                        select(Stream.status).where(Stream.id == stream_id)
                    )
                if status != StreamStatus.LIVE.value:
                    return True
                await asyncio.sleep(0.2)

    async def _end_if_here(self, command: dict[str, Any]) -> None:
        """The cluster command: end the stream if this node packages it."""
        try:
            stream_id = uuid.UUID(str(command.get("stream_id")))
        except ValueError:
            return
        broadcast = self.by_stream(stream_id)
        if broadcast is not None:
            await self.end(broadcast, reason=str(command.get("reason") or "ended elsewhere"))

    async def recover(self, orphan: Orphan, *, reason: str) -> bool:
        """End a live stream no pipeline holds, from what it stored: playlists closed, the
        VOD made from the recorded segments, `ended_at` where the stored media ends (else
        when its node was last heard of). False if it had ended meanwhile."""
        async with self.runtime.db.read_session() as session, session.begin():
            stream = await session.get(Stream, orphan.stream_id)
            if stream is None or stream.status != StreamStatus.LIVE.value:
                return False
            channel = await session.get_one(Channel, stream.channel_id)
            keep = channels.settings_of(channel).recording_enabled
            started_at = stream.started_at or utcnow()
        prefix = media_prefix(orphan.stream_id)
        stored = await close_stored_stream(
            self.store, prefix, started_at=started_at, keep_recording=keep
        )
        ended_at = stored.ended_at or orphan.last_heard or started_at
        ended_at = min(max(ended_at, started_at), utcnow())
        timeline = await self._timeline(stored.renditions)
        async with self.runtime.db.session() as session, session.begin():
            stream = await session.scalar(
                select(Stream).where(Stream.id == orphan.stream_id).with_for_update()
            )
            if stream is None or stream.status != StreamStatus.LIVE.value:
                return False
            await streams.mark_stream_ended(session, stream=stream, now=ended_at, reason=reason)
            await self._record_vod(session, stream, stored.renditions, prefix, timeline)
        log.warning(
            "stream_recovered",
            stream_id=str(orphan.stream_id),
            reason=reason,
            segments={name: s.segment_count for name, s in stored.renditions.items()},
        )
        return True

    async def end(self, broadcast: Broadcast, *, reason: str) -> None:
        """Cut the publisher, stop ffmpeg, close the playlists, end the stream, keep the
        recording as a VOD; returns once all of it is stored (also when already ending)."""
        if broadcast.ended.is_set():
            await broadcast.finished.wait()
            return
        broadcast.ended.set()
        if broadcast.ending is not None and broadcast.ending is not asyncio.current_task():
            broadcast.ending.cancel()
        if self.broadcasts.get(broadcast.channel_id) is broadcast:
            del self.broadcasts[broadcast.channel_id]
        self.finishing[broadcast.channel_id] = broadcast
        try:
            await self._finish(broadcast, reason=reason)
        finally:
            if self.finishing.get(broadcast.channel_id) is broadcast:
                del self.finishing[broadcast.channel_id]
            broadcast.finished.set()

    async def _finish(self, broadcast: Broadcast, *, reason: str) -> None:
        await self.drop_publisher(broadcast, reason="the stream has ended")
        pipeline = broadcast.pipeline
        if pipeline is None or broadcast.stream_id is None:
            return
        summaries = await pipeline.finish()
        timeline = await self._timeline(summaries)
        async with self.runtime.db.session() as session, session.begin():
            stream = await session.get_one(Stream, broadcast.stream_id)
            await streams.mark_stream_ended(session, stream=stream, reason=reason)
            await self._record_vod(session, stream, summaries, pipeline.prefix, timeline)
        log.info("broadcast_ended", stream_id=str(broadcast.stream_id), reason=reason)

    async def _record_vod(
        self,
        session: AsyncSession,
        stream: Stream,
        summaries: dict[str, RecordingSummary],
        prefix: str,
        timeline: list[RecordedSpan] | None,
    ) -> None:
        recorded = {name: s for name, s in summaries.items() if s.vod_playlist_key}
        if not recorded:
            return
        thumbnail = f"{prefix}/{THUMBNAIL}"
        await vods.record_vod(
            session,
            stream=stream,
            duration_seconds=next(iter(recorded.values())).duration,
            size_bytes=sum(s.size for s in recorded.values()),
            playlist_key=f"{prefix}/{MASTER_PLAYLIST}",
            thumbnail_key=thumbnail if await self.store.exists(thumbnail) else None,
            renditions=list(recorded),
            timeline=timeline,
        )

    async def _timeline(self, summaries: dict[str, RecordingSummary]) -> list[RecordedSpan] | None:
        """The recording's spans of wall time (read before the transaction that records it)."""
        key = next((s.vod_playlist_key for s in summaries.values() if s.vod_playlist_key), None)
        if key is None:
            return None
        try:
            return recorded_spans((await self.store.read(key)).decode()) or None
        except MediaNotFound:
            return None

    async def disconnect_channel(self, channel_id: uuid.UUID, *, reason: str) -> bool:
        """Kick the channel's publisher (its key was regenerated); the window then runs."""
        broadcast = self.broadcasts.get(channel_id)
        if broadcast is None or broadcast.disconnect is None:
            return False
        await self.drop_publisher(broadcast, reason=reason)
        await self.release(broadcast, clean=False)
        return True

    async def stop(self) -> None:
        """Server shutdown: end every broadcast cleanly (recordings are kept), all at once,
        then leave the nodes."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        broadcasts = [*self.broadcasts.values(), *self.finishing.values()]
        results = await asyncio.gather(
            *(self.end(b, reason="server shutting down") for b in broadcasts),
            return_exceptions=True,
        )
        for broadcast, result in zip(broadcasts, results, strict=True):
            if isinstance(result, BaseException):
                log.error(
                    "broadcast_end_failed", channel_id=str(broadcast.channel_id), error=repr(result)
                )
        if self._sweeper is not None:  # it joined the nodes
            try:
                await self.nodes.leave(self.runtime.db)
            except Exception:
                log.exception("media_node_leave_failed")

    async def report_health(self, broadcast: Broadcast, health: StreamHealth) -> None:
        """Keep what is known of the source's health and tell the channel room."""
        broadcast.health = health
        await self._emit(broadcast, "stream:health", health.payload())

    async def _emit(self, broadcast: Broadcast, name: str, payload: dict[str, Any]) -> None:
        realtime = self.runtime.realtime
        if realtime is None:
            return
        body = {
            "channel_id": str(broadcast.channel_id),
            "stream_id": str(broadcast.stream_id) if broadcast.stream_id else None,
            **payload,
        }
        await realtime.bus.emit(name, body, rooms=(channel_room(broadcast.channel_id),))
