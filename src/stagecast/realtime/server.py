"""The Socket.IO server: handshake auth, acked handlers, rooms, presence, viewer counts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import engineio.payload
import socketio
import structlog
from pydantic import BaseModel, ValidationError

from stagecast.accounts import service as accounts
from stagecast.accounts.models import Role, User
from stagecast.accounts.security import CHAT_TOKEN_TYPE
from stagecast.accounts.service import AUTH_REVOKED
from stagecast.channels import service as channels
from stagecast.channels.models import Channel
from stagecast.errors import (
    AppError,
    AuthenticationRequired,
    InternalError,
    InvalidToken,
    NotFound,
    ValidationFailed,
)
from stagecast.realtime.bus import (
    STAFF_ROOM,
    EventBus,
    channel_room,
    envelope,
    user_room,
)
from stagecast.realtime.dialects import ENVELOPE, Dialect, DialectName
from stagecast.realtime.fanout import FanoutManager, FramingServer, RedisFanoutManager
from stagecast.realtime.hostile import MalformedTrafficGuard, QuietLogger, WarningBudget
from stagecast.realtime.presence import Presence
from stagecast.runtime import Runtime
from stagecast.streams import service as streams
from stagecast.streams.models import Stream

log = structlog.get_logger(__name__)

TICK_SECONDS = 1.0
RECORD_EVERY_TICKS = 5
# Browser ingest sends one WebM chunk a second; a few MB each at high bitrates.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# Seed 004's 100 events a minute per connection would stop a broadcaster at its hundredth
# chunk: chunks are held by the media's own limits (chunk rate, size, bitrate) instead.
EVENTS_OUTSIDE_THE_EVENT_LIMIT = frozenset({"stream-data"})
# A client on HTTP long-polling sends all it has queued in one POST: `start-stream` and a few
# chunks (two packets each) overrun Engine.IO's default of 16. The body stays size-limited.
MAX_PACKETS_PER_POST = 256
# How long a dropped socket's received events may take to be handled before its clean-up.
DRAIN_SECONDS = 30.0

Payload = TypeVar("Payload", bound=BaseModel)


@dataclass
class SocketUser:
    """Who is on a socket, saved in its Socket.IO session."""

    user_id: uuid.UUID | None
    username: str | None
    display_name: str | None
    role: str | None
    viewer_key: str
    session_id: uuid.UUID | None = None  # the signed-in session the socket acts for
    # The dialect the handshake asked for; `stream:join` joins in it (realtime/dialects.py).
    dialect: DialectName = DialectName.ENVELOPE
    channels: set[uuid.UUID] = field(default_factory=set)
    streams: dict[uuid.UUID, uuid.UUID | None] = field(default_factory=dict)
    dialects: dict[uuid.UUID, Dialect] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return self.user_id is None

    def require_user(self) -> uuid.UUID:
        if self.user_id is None:
            raise AuthenticationRequired("Sign in to do this; anonymous viewers can only watch")
        return self.user_id


Handler = Callable[[str, SocketUser, Any], Awaitable[dict[str, Any] | None]]
# Told about a refused event beside its ack (seed 004's clients use no acks): sid, data, error.
ErrorEvent = Callable[[str, Any, AppError], Awaitable[None]]


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
        # Malformed packets from anyone: one warning line each, budgeted (realtime/hostile.py).
        self._budget = WarningBudget()
        self.sio = FramingServer(
            async_mode="asgi",
            client_manager=manager,
            # None: same origin only (python-socketio's check); configured origins widen it.
            cors_allowed_origins=settings.cors_origins or None,
            max_http_buffer_size=MAX_MESSAGE_BYTES,
            logger=QuietLogger("socketio", self._budget),
            engineio_logger=QuietLogger("engineio", self._budget),
        )
        if settings.cors_origins:
            # One CORS policy: Starlette's CORSMiddleware answers CORS for every path, this
            # one's too (two Access-Control-Allow-Origin headers make browsers refuse the
            # answer). Engine.IO keeps only its check of a handshake's Origin, which matters
            # for websockets, where browsers apply no CORS at all.
            self.sio.eio._cors_headers = lambda _environ: []
        # Engine.IO has this as a class attribute only; no server of ours wants less.
        engineio.payload.Payload.max_decode_packets = MAX_PACKETS_PER_POST
        # Room events skip python-socketio's per-recipient path (see realtime/fanout.py).
        engine = self.sio.eio
        engine._async = {**engine._async, "websocket": manager.transports.websocket_class()}
        self.bus = EventBus(self.sio)
        self.presence = Presence(redis=runtime.redis, key_prefix=settings.key_prefix)
        self._counts: dict[str, int] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._ticks = 0
        # One lock per socket: its events are handled in the order it sent them.
        self._lanes: dict[str, asyncio.Lock] = {}
        self.sio.on("connect", self._connect)
        # Other domains' clean-up when a socket goes (e.g. a browser publisher's broadcast).
        self.disconnect_listeners: list[Callable[[str], Awaitable[None]]] = []
        self.sio.on("disconnect", self._disconnect)

    def asgi_app(self) -> MalformedTrafficGuard:
        # Mounted at /socket.io by create_app; the mount already strips that prefix.
        return MalformedTrafficGuard(socketio.ASGIApp(self.sio, socketio_path=""), self._budget)

    async def start(self) -> None:
        self.presence = Presence(
            redis=self.runtime.redis, key_prefix=self.runtime.settings.key_prefix
        )
        self.bus.start()
        if self.runtime.cluster is not None:
            self.runtime.cluster.on(AUTH_REVOKED, self._on_revoked)
        self._ticker = asyncio.get_running_loop().create_task(self._tick_forever(), name="viewers")

    async def _on_revoked(self, revoked: dict[str, Any]) -> None:
        await self.follow_revocation(revoked)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.bus.stop()

    # --- handlers ----------------------------------------------------------------------------

    def on(
        self,
        *names: str,
        model: type[BaseModel] | None = None,
        error_event: ErrorEvent | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register an acked handler: payload validated, errors answered as problems.

        A socket's events are handled one at a time, in the order it sent them: a chunk sent
        right behind `start-stream`, or a message right behind its join, waits for it.
        """

        counted = not EVENTS_OUTSIDE_THE_EVENT_LIMIT.intersection(names)

        def decorate(handler: Handler) -> Handler:
            async def acked(sid: str, data: Any = None) -> dict[str, Any] | None:
                # python-socketio starts a task per event, in the order they arrived; taking
                # the socket's lane before anything can suspend keeps that order.
                lane = self._lanes.get(sid)
                if lane is None:
                    return None  # the socket has gone
                async with lane:
                    # Handled even if the socket dropped meanwhile: it was received (a
                    # broadcaster's last chunks belong in the recording); its ack goes nowhere.
                    return await self._answer(
                        names[0], handler, sid, data, model, error_event, counted=counted
                    )

            for name in names:
                self.sio.on(name, acked)
            return handler

        return decorate

    async def _answer(
        self,
        event: str,
        handler: Handler,
        sid: str,
        data: Any,
        model: type[BaseModel] | None,
        error_event: ErrorEvent | None,
        *,
        counted: bool,
    ) -> dict[str, Any]:
        try:
            user = await self.socket_user(sid)
            if counted:
                await self.runtime.limiter.hit("socket_events", f"sid:{sid}")
            payload = parse_payload(model, data) if model is not None else data
            result = await handler(sid, user, payload)
        except AppError as exc:
            if error_event is not None:
                await error_event(sid, data, exc)
            return {"ok": False, "error": exc.to_problem()}
        except Exception:
            log.exception("socket_handler_failed", socket_event=event)
            error = InternalError()
            if error_event is not None:
                await error_event(sid, data, error)
            return {"ok": False, "error": error.to_problem()}
        return {"ok": True, **(result or {})}

    async def socket_user(self, sid: str) -> SocketUser:
        stored: dict[str, Any] = await self.sio.get_session(sid)
        user: SocketUser = stored["user"]
        return user

    async def _authenticate(self, auth: Any) -> tuple[User, uuid.UUID] | None:
        """The user (and session) of an access token or a chat token; None without one."""
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
        db = self.runtime.db
        async with db.read_session() as session, db.one_read(session):
            user, auth_session = await accounts.resolve_access(session, claims)
        self.runtime.touches.session_used(auth_session.id)
        return user, auth_session.id

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any) -> bool:
        try:
            await self.runtime.limiter.hit(
                "socket_connections", f"ip:{environ.get('REMOTE_ADDR', 'unknown')}"
            )
            dialect = _handshake_dialect(environ, auth)
            signed_in = await self._authenticate(auth)
        except AppError as exc:
            # The JS client's `connect_error`: `err.message` the sentence, `err.data` the problem.
            raise socketio.exceptions.ConnectionRefusedError(exc.detail, exc.to_problem()) from exc
        if signed_in is None:
            # Anonymous viewers count once per address and browser.
            address = f"{environ.get('REMOTE_ADDR', '')}|{environ.get('HTTP_USER_AGENT', '')}"
            key = "anon:" + hashlib.sha256(address.encode()).hexdigest()[:16]
            socket_user = SocketUser(None, None, None, None, viewer_key=key, dialect=dialect)
        else:
            user, session_id = signed_in
            socket_user = SocketUser(
                user.id,
                user.username,
                user.display_name,
                user.role,
                viewer_key=f"user:{user.id}",
                session_id=session_id,
                dialect=dialect,
            )
            await self.sio.enter_room(sid, user_room(user.id))
            if user.role_enum.rank >= Role.MODERATOR.rank:
                await self.sio.enter_room(sid, STAFF_ROOM)
        await self.sio.save_session(sid, {"user": socket_user})
        self._lanes[sid] = asyncio.Lock()
        return True

    async def follow_revocation(self, revoked: dict[str, Any]) -> int:
        """Disconnect this node's sockets of a revoked session (or of every session of the
        user but the one kept); they may reconnect anonymously. Returns how many went."""
        try:
            user_id = uuid.UUID(str(revoked["user_id"]))
            only = uuid.UUID(str(revoked["session_id"])) if revoked.get("session_id") else None
            keep = (
                uuid.UUID(str(revoked["keep_session_id"]))
                if revoked.get("keep_session_id")
                else None
            )
        except (KeyError, ValueError):
            log.warning("revocation_invalid")
            return 0
        gone = 0
        for sid, _ in list(self.sio.manager.get_participants("/", user_room(user_id))):
            try:
                user = await self.socket_user(sid)
            except KeyError:
                continue
            if (only is not None and user.session_id != only) or (
                keep is not None and user.session_id == keep
            ):
                continue
            notice = envelope("auth:revoked", {"reason": revoked.get("reason")})
            await self.sio.emit("auth:revoked", notice, to=sid)
            await self.sio.disconnect(sid)
            gone += 1
        if gone:
            log.info("sockets_signed_out", user_id=str(user_id), sockets=gone)
        return gone

    async def signed_in_viewers(self, channel_id: uuid.UUID) -> list[uuid.UUID]:
        """The signed-in users in a channel's room now, on every node."""
        keys = await self.presence.viewers(channel_room(channel_id))
        return [uuid.UUID(k.removeprefix("user:")) for k in keys if k.startswith("user:")]

    async def _disconnect(self, sid: str, *_: Any) -> None:
        lane = self._lanes.get(sid)
        if lane is not None:
            # What the socket sent before it went is handled first, in order.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_SECONDS), lane:
                    pass
        self._lanes.pop(sid, None)
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
            return found, await streams.live_stream_of(session, found.id)

    async def resolve_reference(self, reference: str) -> tuple[Channel, Stream | None]:
        """The channel (and stream) of a public name: a stream id, a channel id or a slug."""
        async with self.runtime.db.session() as session, session.begin():
            with contextlib.suppress(ValueError):
                stream = await session.get(Stream, uuid.UUID(reference))
                if stream is not None:
                    return await session.get_one(Channel, stream.channel_id), stream
            try:
                channel = await channels.get_channel(session, reference)
            except NotFound as exc:
                raise streams.StreamNotFound("No stream or channel has this name") from exc
            return channel, await streams.live_stream_of(session, channel.id)

    async def join_channel(
        self,
        sid: str,
        user: SocketUser,
        channel: Channel,
        stream: Stream | None,
        *,
        dialect: Dialect = ENVELOPE,
    ) -> int:
        """Put a socket in a channel's room as a viewer, its events in `dialect`."""
        room = channel_room(channel.id)
        already = channel.id in user.channels
        await self.sio.enter_room(sid, room)
        self.manager.set_dialect(sid, room, dialect)
        user.channels.add(channel.id)
        user.streams[channel.id] = stream.id if stream else None
        user.dialects[channel.id] = dialect
        arrived = not already and self.presence.join(room, user.viewer_key)
        if arrived:  # the viewer is new to this node's set (a second tab changes nothing)
            await self.presence.record(room, user.viewer_key)
        count = await self.presence.count(room)
        if arrived and not user.anonymous and self._announces_viewers(count):
            await self.bus.emit("viewers:joined", self._who(user, channel.id), rooms=(room,))
        return count

    async def leave_channel(self, sid: str, user: SocketUser, channel_id: uuid.UUID) -> None:
        if channel_id not in user.channels:
            raise ValidationFailed("You have not joined this stream")
        room = channel_room(channel_id)
        who = self._who(user, channel_id)
        user.channels.discard(channel_id)
        user.streams.pop(channel_id, None)
        user.dialects.pop(channel_id, None)
        await self.sio.leave_room(sid, room)
        last = self.presence.leave(room, user.viewer_key)
        if last:
            await self.presence.record(room, user.viewer_key)
        if (
            last
            and not user.anonymous
            # Counted with the viewer who leaves, as their arrival was.
            and self._announces_viewers(await self.presence.count(room) + 1)
        ):
            await self.bus.emit("viewers:left", who, rooms=(room,))

    def _announces_viewers(self, count: int) -> bool:
        """Whether a room small enough hears who arrives and leaves: in a big room every
        arrival told to every viewer costs N² deliveries while it fills (5,000 viewers: 12.5
        million), and nobody reads such a list; the viewer count still moves (as Twitch stops
        JOIN/PART above 1,000 chatters)."""
        return count <= self.runtime.settings.presence_events_max_viewers

    async def follow_as_broadcaster(
        self, sid: str, user: SocketUser, channel_id: uuid.UUID, dialect: Dialect
    ) -> None:
        """Give a publishing socket its channel's events (viewers, segments), not as a viewer."""
        if channel_id in user.channels:
            return  # it watches the room already, in the dialect it joined with
        room = channel_room(channel_id)
        await self.sio.enter_room(sid, room)
        self.manager.set_dialect(sid, room, dialect)

    async def unfollow_as_broadcaster(
        self, sid: str, user: SocketUser, channel_id: uuid.UUID
    ) -> None:
        if channel_id not in user.channels:
            await self.sio.leave_room(sid, channel_room(channel_id))

    @staticmethod
    def _who(user: SocketUser, channel_id: uuid.UUID) -> dict[str, Any]:
        stream_id = user.streams.get(channel_id)
        return {
            "channel_id": str(channel_id),
            "stream_id": str(stream_id) if stream_id else None,
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
            previous = self._counts.get(room)
            if previous != count:
                self._counts[room] = count
                update = {
                    "channel_id": str(channel_id),
                    "viewer_count": count,
                    "previous_count": previous or 0,
                }
                await self.bus.emit("viewers:updated", update, rooms=(room,))
                record = True
            if record:
                await self._record(channel_id, count)
            if count == 0 and room not in self.presence.rooms():
                self._counts.pop(room, None)

    async def _record(self, channel_id: uuid.UUID, count: int) -> None:
        async with self.runtime.db.session() as session, session.begin():
            live = await streams.live_stream_of(session, channel_id)
            if live is not None:
                await streams.record_viewer_count(session, stream=live, count=count)


def _handshake_dialect(environ: dict[str, Any], auth: Any) -> DialectName:
    """The dialect a client asks for: `auth: {dialect}` or `?dialect=` (seed 002's clients)."""
    wanted = auth.get("dialect") if isinstance(auth, dict) else None
    if wanted is None:
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        wanted = (query.get("dialect") or [None])[0]
    if wanted is None:
        return DialectName.ENVELOPE
    try:
        return DialectName(wanted)
    except ValueError:
        names = ", ".join(d.value for d in DialectName)
        raise ValidationFailed(
            f"Unknown dialect {str(wanted)[:40]!r}; use one of {names}",
            errors=[{"field": "dialect", "in": "handshake", "message": f"one of {names}"}],
        ) from None
