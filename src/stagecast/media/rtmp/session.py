"""One RTMP connection: handshake, chunk streams and the publish conversation of OBS and ffmpeg.

The session reads only when the previous bytes are handled, and every sink call is awaited, so a
slow sink slows the publisher down through TCP instead of growing a buffer here.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import NoReturn, Protocol, cast

import structlog

from stagecast.media.rtmp import amf0
from stagecast.media.rtmp.chunks import (
    ChunkReader,
    MessageType,
    PeerBandwidthLimit,
    RtmpMessage,
    UserControlEvent,
    acknowledgement,
    encode_message,
    set_chunk_size,
    set_peer_bandwidth,
    user_control,
    window_ack_size,
)
from stagecast.media.rtmp.flv import (
    FlvTag,
    TagType,
    parse_metadata,
    split_aggregate,
    tag_from_message,
)
from stagecast.media.rtmp.handshake import C2_SIZE, HANDSHAKE_SIZE, RTMP_VERSION, server_handshake

log = structlog.get_logger(__name__)

READ_SIZE = 64 * 1024
_COMMAND_CHUNK_STREAM = 3
_STATUS_CHUNK_STREAM = 5
_ACK_ONLY_COMMANDS = frozenset({"releaseStream", "FCPublish"})
_END_PUBLISH_COMMANDS = frozenset({"FCUnpublish", "deleteStream", "closeStream"})


@dataclass(frozen=True)
class RtmpLimits:
    """Limits and timeouts of the RTMP server (seconds and bytes).

    Until its publish is authorised a connection is anyone's: it may hold at most
    `unauthenticated_max_bytes` (its largest message, and its unfinished messages together),
    set chunks of at most `unauthenticated_max_chunk_size`, send
    `unauthenticated_max_messages`, stay silent `idle_timeout` and take `auth_timeout` from
    connecting to publishing. An authorised publisher may send messages up to
    `max_message_size` and be silent `read_timeout`.
    """

    max_connections: int = 1000
    max_connections_per_ip: int = 10
    max_message_size: int = 5_000_000
    unauthenticated_max_bytes: int = 32 * 1024
    # The largest chunk size encoders set (OBS and ffmpeg use 4096, some 60000 or 65536).
    unauthenticated_max_chunk_size: int = 65536
    # OBS and ffmpeg send under ten before publish; a flood of pings is CPU spent for nobody.
    unauthenticated_max_messages: int = 100
    handshake_timeout: float = 5.0
    idle_timeout: float = 10.0
    auth_timeout: float = 30.0
    read_timeout: float = 30.0
    write_timeout: float = 10.0
    close_timeout: float = 5.0
    chunk_size: int = 4096
    ack_window: int = 2_500_000


@dataclass(frozen=True)
class PublishRequest:
    """A publisher asking to go live: who, on which key, with what encoder."""

    connection_id: int
    peer: str
    app: str
    stream_key: str
    query: str
    tc_url: str
    encoder: str


class PublishRefused(Exception):
    """Refuse a publish; `description` reaches the publisher in its onStatus error.

    Raise it from the authorize callback (unknown, regenerated or already live key) or from a
    sink method (a limit exceeded mid-stream); the connection then closes.
    """

    def __init__(self, description: str, *, code: str = "NetStream.Publish.BadName") -> None:
        super().__init__(description)
        self.description = description
        self.code = code


class PublishSink(Protocol):
    """Where an accepted publish goes; each call is awaited before more bytes are read."""

    async def on_metadata(self, metadata: dict[str, amf0.AmfValue]) -> None:
        """Receive `onMetaData` properties (width, height, bitrates, encoder…)."""

    async def on_tag(self, tag: FlvTag) -> None:
        """Receive one FLV tag: audio, video, or the onMetaData script tag."""

    async def on_close(self, reason: str) -> None:
        """Learn that the publish ended (unpublished, disconnected, refused, kicked); once."""


Authorize = Callable[[PublishRequest], Awaitable[PublishSink]]


def resolve_stream_key(app: str, stream_name: str) -> tuple[str, str, str]:
    """Return (app, stream key, query) from connect's app and publish's stream name.

    Both `app=live, name=<key>` (OBS "Custom") and `app=live/<key>, name=""|<key>` are
    accepted; query strings (`key?token=…`) are split off either.
    """
    app_path, _, app_query = app.partition("?")
    name, _, name_query = stream_name.partition("?")
    base, _, app_key = app_path.strip("/").partition("/")
    name = name.strip("/")
    key = name or app_key
    return base, key, name_query or app_query


class _ReadControl(Protocol):
    """Flow control of a read transport (uvloop's are not `asyncio.ReadTransport`s)."""

    def is_reading(self) -> bool: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def is_closing(self) -> bool: ...


class SessionEnded(Exception):
    """Stop the session; `reason` is logged and given to the sink."""

    def __init__(self, reason: str, *, bad_input: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.bad_input = bad_input


class RtmpSession:
    """Serve one connection from handshake to close."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        connection_id: int,
        app: str,
        authorize: Authorize,
        limits: RtmpLimits,
    ) -> None:
        self.connection_id = connection_id
        self._reader = reader
        self._writer = writer
        self._app = app
        self._authorize = authorize
        self._limits = limits
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._log = log.bind(connection_id=connection_id, peer=self.peer)
        self._chunks = ChunkReader(
            max_message_size=limits.unauthenticated_max_bytes,
            max_buffered=limits.unauthenticated_max_bytes,
            max_chunk_size=limits.unauthenticated_max_chunk_size,
        )
        self._authorised = False
        self._unauthenticated_messages = 0
        self._out_chunk_size = 128
        self._received = 0
        self._last_ack = 0
        self._ack_window = limits.ack_window
        self._connect: dict[str, amf0.AmfValue] | None = None
        self._next_stream_id = 1
        self._publish_stream_id = 0
        self._sink: PublishSink | None = None
        self.request: PublishRequest | None = None
        self._closing: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()

    def close(self, reason: str) -> None:
        """Ask the session to end after the message it is handling."""
        if self._closing is None:
            self._closing = reason
        self._writer.close()

    async def run(self) -> None:
        """Serve the connection; never raises for anything the peer does."""
        self.task = asyncio.current_task()
        reason, bad_input = "cancelled", False
        try:
            try:
                await self._handshake()
                reason = await self._serve()
            except SessionEnded as ended:
                reason, bad_input = ended.reason, ended.bad_input
            except asyncio.IncompleteReadError:
                reason, bad_input = "connection closed mid-message", True
            except ValueError as error:  # how the chunk, AMF0 and FLV parsers reject bytes
                reason, bad_input = f"protocol error: {error}", True
            except OSError as error:
                reason = f"connection lost: {error}"
            except Exception:
                # A bug here must end this connection only, with the traceback in the log.
                self._log.exception("rtmp_session_failed")
                reason = "internal error"
            if self._closing is not None:
                reason, bad_input = self._closing, False
            report = self._log.warning if bad_input else self._log.info
            report("rtmp_connection_closed", reason=reason)
        finally:
            try:
                await self._end_publish(reason)
            finally:
                self._writer.close()
                self.finished.set()

    async def _handshake(self) -> None:
        try:
            async with asyncio.timeout(self._limits.handshake_timeout):
                c0 = await self._reader.readexactly(1)
                # Refuse garbage (an HTTP request, TLS) at the first byte instead of after 1537.
                if c0[0] != RTMP_VERSION:
                    raise SessionEnded(f"handshake: unsupported RTMP version {c0[0]}")
                c1 = await self._reader.readexactly(HANDSHAKE_SIZE)
                reply = server_handshake(
                    c0 + c1, server_time=int(time.monotonic() * 1000), random=os.urandom(1528)
                )
                self._writer.write(reply)
                await self._writer.drain()
                await self._reader.readexactly(C2_SIZE)
        except TimeoutError:
            raise SessionEnded("handshake timed out") from None
        except asyncio.IncompleteReadError:
            raise SessionEnded("handshake truncated") from None
        self._received = 1 + HANDSHAKE_SIZE + C2_SIZE

    async def _serve(self) -> str:
        auth_deadline = time.monotonic() + self._limits.auth_timeout
        while self._closing is None:
            data = await self._read(auth_deadline)
            if not data:
                break
            self._received += len(data)
            if self._received - self._last_ack >= self._ack_window:
                self._send(acknowledgement(self._received))
                self._last_ack = self._received
            self._chunks.push(data)
            while self._closing is None and (message := self._chunks.next_message()) is not None:
                if not self._authorised:
                    self._count_unauthenticated_message()
                await self._dispatch(message)
            await self._flush()
        return self._closing or "peer closed the connection"

    def _count_unauthenticated_message(self) -> None:
        self._unauthenticated_messages += 1
        if self._unauthenticated_messages > self._limits.unauthenticated_max_messages:
            limit = self._limits.unauthenticated_max_messages
            raise SessionEnded(f"more than {limit} messages before publish")

    async def _read(self, auth_deadline: float) -> bytes:
        """The next bytes; before publish is authorised, within the idle and auth timeouts."""
        if self._authorised:
            timeout, silence = self._limits.read_timeout, self._limits.read_timeout
        else:
            timeout = min(self._limits.idle_timeout, auth_deadline - time.monotonic())
            silence = self._limits.idle_timeout
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                return await self._reader.read(READ_SIZE)
        except TimeoutError:
            if not self._authorised and time.monotonic() >= auth_deadline:
                raise SessionEnded(
                    f"no publish within {self._limits.auth_timeout:g} s of connecting"
                ) from None
            raise SessionEnded(f"no data for {silence:g} s", bad_input=False) from None

    def _send(self, message: RtmpMessage) -> None:
        if not self._writer.is_closing():
            self._writer.write(encode_message(message, self._out_chunk_size))

    async def _flush(self) -> None:
        try:
            async with asyncio.timeout(self._limits.write_timeout):
                await self._writer.drain()
        except TimeoutError:
            raise SessionEnded("peer does not read what we send") from None

    def _send_command(self, stream_id: int, *values: amf0.AmfValue) -> None:
        chunk_stream = _STATUS_CHUNK_STREAM if stream_id else _COMMAND_CHUNK_STREAM
        payload = amf0.encode(*values)
        self._send(RtmpMessage(MessageType.COMMAND_AMF0, stream_id, 0, payload, chunk_stream))

    def _send_status(self, stream_id: int, level: str, code: str, description: str) -> None:
        info: dict[str, amf0.AmfValue] = {"level": level, "code": code, "description": description}
        self._send_command(stream_id, "onStatus", 0, None, info)

    async def _dispatch(self, message: RtmpMessage) -> None:
        kind = message.type_id
        if kind == MessageType.COMMAND_AMF0:
            await self._on_command(message, amf0.decode(message.payload))
        elif kind == MessageType.COMMAND_AMF3:
            # An AMF3 command is AMF0 after a format byte, as long as nothing switches to AMF3.
            await self._on_command(message, amf0.decode(message.payload[1:]))
        elif kind in (MessageType.DATA_AMF0, MessageType.DATA_AMF3):
            body = message.payload[1:] if kind == MessageType.DATA_AMF3 else message.payload
            await self._on_data(message, body)
        elif kind in (MessageType.AUDIO, MessageType.VIDEO):
            if self._sink is None:
                raise SessionEnded("media sent before publish")
            tag = tag_from_message(message)
            if tag is not None:
                await self._call_sink(self._sink.on_tag(tag))
        elif kind == MessageType.AGGREGATE:
            if self._sink is None:
                raise SessionEnded("media sent before publish")
            for tag in split_aggregate(message):
                await self._call_sink(self._sink.on_tag(tag))
        elif kind == MessageType.WINDOW_ACK_SIZE and len(message.payload) >= 4:
            self._ack_window = max(1, int.from_bytes(message.payload[:4], "big"))
        elif kind == MessageType.USER_CONTROL and message.payload[:2] == b"\x00\x06":
            ping = int.from_bytes(message.payload[2:6], "big")
            self._send(user_control(UserControlEvent.PING_RESPONSE, ping))

    async def _on_command(self, message: RtmpMessage, values: list[amf0.AmfValue]) -> None:
        if len(values) < 2 or not isinstance(values[0], str):
            raise SessionEnded("malformed command")
        name, transaction = values[0], values[1]
        if not isinstance(transaction, int | float) or isinstance(transaction, bool):
            raise SessionEnded(f"malformed transaction id in {name}")
        args = values[2:]
        if name == "connect":
            await self._on_connect(transaction, args[0] if args else None)
            return
        if self._connect is None:
            raise SessionEnded(f"{name} before connect")
        if name == "createStream":
            self._send_command(0, "_result", transaction, None, self._next_stream_id)
            self._next_stream_id += 1
        elif name == "publish":
            stream_name = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            await self._on_publish(message.stream_id, stream_name)
        elif name in _ACK_ONLY_COMMANDS or name in _END_PUBLISH_COMMANDS:
            if name in _END_PUBLISH_COMMANDS and self._sink is not None:
                self._send_status(
                    self._publish_stream_id,
                    "status",
                    "NetStream.Unpublish.Success",
                    "Stream is now unpublished.",
                )
                await self._end_publish("unpublished")
            if transaction:
                self._send_command(0, "_result", transaction, None, amf0.UNDEFINED)
        elif name == "play":
            self._send_status(
                message.stream_id, "error", "NetStream.Play.Failed", "This server only ingests."
            )
            raise SessionEnded("play is not supported")
        else:
            self._log.debug("rtmp_command_ignored", command=name)

    async def _on_connect(self, transaction: float, command: amf0.AmfValue) -> None:
        if self._connect is not None:
            raise SessionEnded("connect sent twice")
        if not isinstance(command, dict):
            raise SessionEnded("connect without a command object")
        app = command.get("app")
        base, _, _ = resolve_stream_key(app if isinstance(app, str) else "", "")
        if base != self._app:
            self._send_command(
                0,
                "_error",
                transaction,
                None,
                {
                    "level": "error",
                    "code": "NetConnection.Connect.Rejected",
                    "description": f"Unknown application {base!r}; publish to /{self._app}/<key>.",
                },
            )
            await self._flush()
            raise SessionEnded(f"connect to unknown app {base!r}")
        self._connect = command
        self._send(window_ack_size(self._limits.ack_window))
        self._send(set_peer_bandwidth(self._limits.ack_window, PeerBandwidthLimit.DYNAMIC))
        self._send(set_chunk_size(self._limits.chunk_size))
        self._out_chunk_size = self._limits.chunk_size
        encoding = command.get("objectEncoding", 0)
        self._send_command(
            0,
            "_result",
            transaction,
            {"fmsVer": "FMS/3,0,1,123", "capabilities": 31},
            {
                "level": "status",
                "code": "NetConnection.Connect.Success",
                "description": "Connection succeeded.",
                "objectEncoding": encoding if isinstance(encoding, int | float) else 0,
            },
        )

    def _connect_string(self, key: str) -> str:
        value = (self._connect or {}).get(key)
        return value if isinstance(value, str) else ""

    async def _on_publish(self, stream_id: int, stream_name: str) -> None:
        if self._sink is not None:
            raise SessionEnded("publish sent twice")
        app, key, query = resolve_stream_key(self._connect_string("app"), stream_name)
        request = PublishRequest(
            connection_id=self.connection_id,
            peer=self.peer,
            app=app,
            stream_key=key,
            query=query,
            tc_url=self._connect_string("tcUrl"),
            encoder=self._connect_string("flashVer"),
        )
        if not key:
            await self._refuse(stream_id, PublishRefused("No stream key given."))
        try:
            async with self._not_reading():
                sink = await self._authorize(request)
        except PublishRefused as refused:
            await self._refuse(stream_id, refused)
        except Exception as error:
            self._log.exception("rtmp_authorize_failed", stream_key=key)
            failed = PublishRefused("Internal server error.", code="NetStream.Publish.Failed")
            await self._refuse(stream_id, failed, error)
        self._sink, self.request, self._publish_stream_id = sink, request, stream_id
        self._log = self._log.bind(stream_key=key)
        if not self._authorised:
            # The peer proved it holds a stream key: frames of a live stream may come now.
            self._authorised = True
            self._chunks.set_limits(max_message_size=self._limits.max_message_size)
        self._send(user_control(UserControlEvent.STREAM_BEGIN, stream_id))
        self._send_status(
            stream_id, "status", "NetStream.Publish.Start", f"{stream_name} is now published."
        )
        await self._flush()
        self._log.info("rtmp_publish_started", encoder=request.encoder)

    @asynccontextmanager
    async def _not_reading(self) -> AsyncIterator[None]:
        """Leave what the peer sends in the kernel meanwhile (authorising may take a while)."""
        transport = cast(_ReadControl, self._writer.transport)
        paused = transport.is_reading()
        if paused:
            transport.pause_reading()
        try:
            yield
        finally:
            if paused and not transport.is_closing():
                transport.resume_reading()

    async def _refuse(
        self, stream_id: int, refused: PublishRefused, cause: BaseException | None = None
    ) -> NoReturn:
        self._send_status(stream_id, "error", refused.code, refused.description)
        await self._flush()
        raise SessionEnded(f"publish refused: {refused.description}") from cause or refused

    async def _on_data(self, message: RtmpMessage, body: bytes) -> None:
        if self._sink is None:
            raise SessionEnded("data sent before publish")
        parsed = parse_metadata(body)
        if parsed is None:
            return
        script, metadata = parsed
        await self._call_sink(self._sink.on_metadata(metadata))
        await self._call_sink(self._sink.on_tag(FlvTag(TagType.SCRIPT, message.timestamp, script)))

    async def _call_sink(self, call: Awaitable[None]) -> None:
        try:
            await call
        except PublishRefused as refused:
            await self._refuse(self._publish_stream_id, refused)
        except Exception as error:
            self._log.exception("rtmp_sink_failed")
            raise SessionEnded("the stream's pipeline failed") from error

    async def _end_publish(self, reason: str) -> None:
        sink, self._sink, self.request = self._sink, None, None
        if sink is None:
            return
        self._log.info("rtmp_publish_ended", reason=reason)
        try:
            await sink.on_close(reason)
        except Exception:
            self._log.exception("rtmp_sink_close_failed")
