"""The Socket.IO server: handshake auth, acked handlers, rooms, presence, viewer counts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import socketio
import structlog
from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from stagecast.accounts import service as accounts
from stagecast.accounts.models import User
from stagecast.accounts.security import CHAT_TOKEN_TYPE
from stagecast.channels.models import Channel
from stagecast.errors import (
    AppError,
    AuthenticationRequired,
    InternalError,
    InvalidToken,
    NotFound,
    ValidationFailed,
)
from stagecast.realtime.bus import EventBus, channel_room, legacy_room, user_room
from stagecast.realtime.fanout import FanoutManager, RedisFanoutManager
from stagecast.realtime.presence import Presence
from stagecast.runtime import Runtime
from stagecast.streams import service as streams
from stagecast.streams.models import Stream, StreamStatus

log = structlog.get_logger(__name__)

TICK_SECONDS = 1.0
RECORD_EVERY_TICKS = 5
# Browser ingest sends one WebM chunk a second; a few MB each at high bitrates.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# Seed 004's 100 events a minute per connection would stop a broadcaster at its hundredth
# chunk: chunks are held by the media's own limits (chunk rate, size, bitrate) instead.
EVENTS_OUTSIDE_THE_EVENT_LIMIT = frozenset({"stream-data"})

Payload = TypeVar("Payload", bound=BaseModel)


@dataclass
class SocketUser:
    """Who is on a socket, saved in its Socket.IO session."""

    user_id: uuid.UUID | None
    username: str | None
    display_name: str | None
    role: str | None
    viewer_key: str
    channels: set[uuid.UUID] = field(default_factory=set)
    streams: dict[uuid.UUID, uuid.UUID | None] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return self.user_id is None

    def require_user(self) -> uuid.UUID:
        if self.user_id is None:
            raise AuthenticationRequired("Sign in to do this; anonymous viewers can only watch")
        return self.user_id


Handler = Callable[[str, SocketUser, Any], Awaitable[dict[str, Any] | None]]


def parse_payload(model: type[Payload], data: Any) -> Payload:
    """Validate an event payload into its model, or raise the problem an ack carries."""
    if not isinstance(data, dict):
        raise ValidationFailed("The event payload must be an object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(str(p) for p in e["loc"]),
                "in": "payload",
                "message": e["msg"],
                "type": e["type"],
            }
            for e in exc.errors()
        ]
        raise ValidationFailed("The event payload is invalid", errors=errors) from exc


class RealtimeServer:
    """One per app: the Socket.IO server, its presence tracking and its event bus."""

    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        manager: FanoutManager
        if settings.redis_url:
            manager = RedisFanoutManager(
                settings.redis_url, channel=f"{settings.key_prefix}:socketio"
            )
        else:
            manager = FanoutManager()
        self.manager = manager
        self.runtime = runtime
        self.sio = socketio.AsyncServer(
            async_mode="asgi",
            client_manager=manager,
            # None: same origin only (python-socketio's check); configured origins widen it.
            cors_allowed_origins=settings.cors_origins or None,
            max_http_buffer_size=MAX_MESSAGE_BYTES,
            logger=False,
            engineio_logger=False,
        )
        # Room events skip python-socketio's per-recipient path (see realtime/fanout.py).
        engine = self.sio.eio
        engine._async = {**engine._async, "websocket": manager.transports.websocket_class()}
        self.bus = EventBus(self.sio)
        self.presence = Presence(redis=runtime.redis, key_prefix=settings.key_prefix)
        self._counts: dict[str, int] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._ticks = 0
        self.sio.on("connect", self._connect)
        # Other domains' clean-up when a socket goes (e.g. a browser publisher's broadcast).
        self.disconnect_listeners: list[Callable[[str], Awaitable[None]]] = []
        self.sio.on("disconnect", self._disconnect)

    def asgi_app(self) -> socketio.ASGIApp:
        # Mounted at /socket.io by create_app; the mount already strips that prefix.
        return socketio.ASGIApp(self.sio, socketio_path="")

    async def start(self) -> None:
        self.presence = Presence(
            redis=self.runtime.redis, key_prefix=self.runtime.settings.key_prefix
        )
        self.bus.start()
        self._ticker = asyncio.get_running_loop().create_task(self._tick_forever(), name="viewers")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.bus.stop()

    # --- handlers ----------------------------------------------------------------------------

    def on(self, *names: str, model: type[BaseModel] | None = None) -> Callable[[Handler], Handler]:
        """Register an acked handler: payload validated, errors answered as problems."""

        counted = not EVENTS_OUTSIDE_THE_EVENT_LIMIT.intersection(names)

        def decorate(handler: Handler) -> Handler:
            async def acked(sid: str, data: Any = None) -> dict[str, Any]:
                try:
                    user = await self.socket_user(sid)
                    if counted:
                        await self.runtime.limiter.hit("socket_events", f"sid:{sid}")
                    payload = parse_payload(model, data) if model is not None else data
                    result = await handler(sid, user, payload)
                except AppError as exc:
                    return {"ok": False, "error": exc.to_problem()}
                except Exception:
                    log.exception("socket_handler_failed", event=names[0])
                    return {"ok": False, "error": InternalError().to_problem()}
                return {"ok": True, **(result or {})}

            for name in names:
                self.sio.on(name, acked)
            return handler

        return decorate

    async def socket_user(self, sid: str) -> SocketUser:
        stored: dict[str, Any] = await self.sio.get_session(sid)
        user: SocketUser = stored["user"]
        return user

    async def _authenticate(self, auth: Any) -> User | None:
        """The user of an access token or a chat token; None when no token is sent."""
        token = auth.get("token") if isinstance(auth, dict) else None
        if not token:
            return None
        if not isinstance(token, str) or len(token) > 4096:
            raise InvalidToken()
        tokens = self.runtime.tokens
        try:
            claims = tokens.decode_access(token)
        except InvalidToken:
            claims = tokens.decode_access(token, token_type=CHAT_TOKEN_TYPE)
        async with self.runtime.db.session() as session, session.begin():
            user, _ = await accounts.resolve_access(session, claims)
        return user

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any) -> bool:
        try:
            await self.runtime.limiter.hit(
                "socket_connections", f"ip:{environ.get('REMOTE_ADDR', 'unknown')}"
            )
            user = await self._authenticate(auth)
        except AppError as exc:
            # The JS client receives this as `connect_error` with `err.data`.
            raise socketio.exceptions.ConnectionRefusedError(exc.to_problem()) from exc
        if user is None:
            # Anonymous viewers count once per address and browser.
            address = f"{environ.get('REMOTE_ADDR', '')}|{environ.get('HTTP_USER_AGENT', '')}"
            key = "anon:" + hashlib.sha256(address.encode()).hexdigest()[:16]
            socket_user = SocketUser(None, None, None, None, viewer_key=key)
        else:
            socket_user = SocketUser(
                user.id, user.username, user.display_name, user.role, viewer_key=f"user:{user.id}"
            )
            await self.sio.enter_room(sid, user_room(user.id))
        await self.sio.save_session(sid, {"user": socket_user})
        return True

    async def signed_in_viewers(self, channel_id: uuid.UUID) -> list[uuid.UUID]:
        """The signed-in users in a channel's room now, on every node."""
        keys = await self.presence.viewers(channel_room(channel_id))
        return [uuid.UUID(k.removeprefix("user:")) for k in keys if k.startswith("user:")]

    async def _disconnect(self, sid: str, *_: Any) -> None:
        for listener in self.disconnect_listeners:
            try:
                await listener(sid)
            except Exception:
                log.exception("disconnect_listener_failed")
        with contextlib.suppress(KeyError):
            user = await self.socket_user(sid)
            for channel_id in list(user.channels):
                await self.leave_channel(sid, user, channel_id)

    # --- rooms ---------------------------------------------------------------------------------

    async def resolve_target(
        self, *, stream_id: uuid.UUID | None, channel_id: uuid.UUID | None
    ) -> tuple[Channel, Stream | None]:
        """The channel (and stream) a join names: by stream id or by channel id."""
        async with self.runtime.db.session() as session, session.begin():
            if stream_id is not None:
                stream = await streams.get_stream(session, stream_id)
                channel = await session.get_one(Channel, stream.channel_id)
                return channel, stream
            if channel_id is None:
                raise ValidationFailed("Name the stream (streamId) or the channel (channelId)")
            found = await session.get(Channel, channel_id)
            if found is None:
                raise NotFound("Channel not found")
            live = await session.scalar(
                select(Stream).where(
                    Stream.channel_id == found.id, Stream.status == StreamStatus.LIVE.value
                )
            )
            return found, live

    async def join_channel(
        self, sid: str, user: SocketUser, channel: Channel, stream: Stream | None, *, legacy: bool
    ) -> int:
        room = channel_room(channel.id)
        already = channel.id in user.channels
        await self.sio.enter_room(sid, room)
        if legacy:
            await self.sio.enter_room(sid, legacy_room(channel.id))
        user.channels.add(channel.id)
        user.streams[channel.id] = stream.id if stream else None
        if not already and self.presence.join(room, user.viewer_key) and not user.anonymous:
            await self.bus.emit("viewers:joined", self._who(user, channel), rooms=(room,))
        await self.presence.publish_local(room)
        return await self.presence.count(room)

    async def leave_channel(self, sid: str, user: SocketUser, channel_id: uuid.UUID) -> None:
        if channel_id not in user.channels:
            raise ValidationFailed("You have not joined this stream")
        room = channel_room(channel_id)
        user.channels.discard(channel_id)
        user.streams.pop(channel_id, None)
        await self.sio.leave_room(sid, room)
        await self.sio.leave_room(sid, legacy_room(channel_id))
        if self.presence.leave(room, user.viewer_key) and not user.anonymous:
            await self.bus.emit(
                "viewers:left",
                {
                    "channel_id": str(channel_id),
                    "user_id": str(user.user_id),
                    "username": user.username,
                },
                rooms=(room,),
            )

    @staticmethod
    def _who(user: SocketUser, channel: Channel) -> dict[str, Any]:
        return {
            "channel_id": str(channel.id),
            "user_id": str(user.user_id),
            "username": user.username,
            "display_name": user.display_name,
        }

    # --- viewer counts -------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                await self.tick()
            except Exception:
                log.exception("viewer_tick_failed")

    async def tick(self) -> None:
        """Push changed viewer counts (at most once a second per room) and record them."""
        self._ticks += 1
        rooms = self.presence.rooms() | self.presence.touched | set(self._counts)
        self.presence.touched = set()
        record = self._ticks % RECORD_EVERY_TICKS == 0
        for room in rooms:
            await self.presence.publish_local(room)
            if not await self.presence.lead(room, int(TICK_SECONDS * 2500)):
                continue
            count = await self.presence.count(room)
            channel_id = uuid.UUID(room.split(":", 1)[1])
            if self._counts.get(room) != count:
                self._counts[room] = count
                await self.bus.emit(
                    "viewers:updated",
                    {"channel_id": str(channel_id), "viewer_count": count},
                    rooms=(room,),
                )
                record = True
            if record:
                await self._record(channel_id, count)
            if count == 0 and room not in self.presence.rooms():
                self._counts.pop(room, None)

    async def _record(self, channel_id: uuid.UUID, count: int) -> None:
        async with self.runtime.db.session() as session, session.begin():
            live = await session.scalar(
                select(Stream).where(
                    Stream.channel_id == channel_id, Stream.status == StreamStatus.LIVE.value
                )
            )
            if live is not None:
                await streams.record_viewer_count(session, stream=live, count=count)
