"""Room fan-out: a room event is encoded and framed once, then written to every websocket.

python-socketio delivers a room event by creating a task per recipient, queueing the packet on
each socket and letting each socket's writer task frame it through the ASGI server: about
100 µs a recipient, so one 5,000-viewer room tops out near 10,000 deliveries a second. Here the
event is encoded to one Engine.IO packet and one websocket frame, and the same bytes go to each
recipient's transport: a few µs a recipient. A socket that cannot take a raw frame (HTTP
long-polling, mid-upgrade, or served by another ASGI server than `stagecast serve`'s uvicorn)
gets the packet the ordinary way.

Room broadcasts without acks take the fast path, and so do packets to one socket (acks, events
to a sid: `FramingServer`) when nothing is queued for it the ordinary way, so a socket's
packets keep their order. A room's events keep their order, since they all take the same path.
Sockets that joined a room in another dialect (realtime/dialects.py) get the event in that
dialect instead: one translation and one frame per dialect in the room, never two events.
A viewer that stops reading is disconnected once `MAX_BUFFERED_BYTES` wait for it, instead of
the server buffering for it without bound.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import Any

import socketio
import structlog
from engineio import packet as eio_packet
from engineio.async_drivers.asgi import WebSocket as EngineWebSocket
from socketio import packet as sio_packet
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from stagecast.realtime.dialects import Dialect, DialectName

log = structlog.get_logger(__name__)

TRANSPORT_SCOPE_KEY = "stagecast.transport"
MAX_BUFFERED_BYTES = 4 * 1024 * 1024
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2


def websocket_frame(payload: bytes, *, opcode: int = OPCODE_TEXT) -> bytes:
    """One unfragmented, unmasked server-to-client websocket frame (RFC 6455 section 5.2)."""
    first = 0x80 | opcode  # FIN: the whole message in this frame
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


class TransportProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol, handing its transport to the app in the ASGI scope."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # not set when the handshake was refused
            scope["extensions"][TRANSPORT_SCOPE_KEY] = self.transport


class Transports:
    """The websocket transport of each Engine.IO socket that can take raw frames."""

    def __init__(self) -> None:
        self._by_eio_sid: dict[str, asyncio.WriteTransport] = {}

    def __len__(self) -> int:
        return len(self._by_eio_sid)

    def attach(self, eio_sid: str, transport: asyncio.WriteTransport) -> None:
        self._by_eio_sid[eio_sid] = transport

    def detach(self, eio_sid: str) -> None:
        self._by_eio_sid.pop(eio_sid, None)

    def get(self, eio_sid: str) -> asyncio.WriteTransport | None:
        return self._by_eio_sid.get(eio_sid)

    def websocket_class(self) -> type[EngineWebSocket]:
        """Engine.IO's ASGI websocket, registering its transport here while it is open."""
        transports = self

        class RegisteringWebSocket(EngineWebSocket):  # type: ignore[misc]
            def __init__(self, handler: Any, server: Any) -> None:
                super().__init__(handler, server)
                # Engine.IO passes its socket's bound handler: that socket's id.
                self.eio_sid: str | None = getattr(getattr(handler, "__self__", None), "sid", None)

            async def __call__(self, environ: dict[str, Any]) -> str:
                scope = environ.get("asgi.scope") or {}
                transport = scope.get("extensions", {}).get(TRANSPORT_SCOPE_KEY)
                if self.eio_sid is not None and transport is not None:
                    transports.attach(self.eio_sid, transport)
                try:
                    result: str = await super().__call__(environ)
                finally:
                    self._detach()
                return result

            async def close(self) -> None:
                # No raw frame may follow the close frame.
                self._detach()
                await super().close()

            def _detach(self) -> None:
                if self.eio_sid is not None:
                    transports.detach(self.eio_sid)

        return RegisteringWebSocket


@dataclass(frozen=True, slots=True)
class _Prepared:
    """An event as it goes out: one websocket frame and Engine.IO packet for every recipient."""

    event: str
    data: Any
    frame: bytes | None  # None: the event has binary attachments (several packets)
    message: eio_packet.Packet | None

    @classmethod
    def of(cls, server: Any, event: str, data: Any, namespace: str) -> _Prepared:
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        encoded = server.packet_class(
            sio_packet.EVENT, namespace=namespace, data=[event, *args]
        ).encode()
        if isinstance(encoded, list):
            return cls(event, data, None, None)
        message = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        return cls(event, data, websocket_frame(message.encode().encode()), message)


class FanoutManager(socketio.AsyncManager):  # type: ignore[misc]
    """Delivers room events to this node's sockets with one shared frame per dialect."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transports = Transports()
        self.frames_written = 0
        # (namespace, room) -> sid -> dialect, for the sockets not on the envelope only.
        self.dialects: dict[tuple[str, str], dict[str, Dialect]] = {}

    def set_dialect(self, sid: str, room: str, dialect: Dialect, namespace: str = "/") -> None:
        """Deliver `room`'s events to `sid` in `dialect` (the envelope by default)."""
        if dialect.name == DialectName.ENVELOPE:
            self._forget_dialect(sid, namespace, room)
        else:
            self.dialects.setdefault((namespace, room), {})[sid] = dialect

    def dialect_of(self, sid: str, room: str, namespace: str = "/") -> Dialect | None:
        return self.dialects.get((namespace, room), {}).get(sid)

    def basic_leave_room(self, sid: str, namespace: str, room: str) -> None:
        # Every way out of a room (leave, disconnect, close) comes through here.
        super().basic_leave_room(sid, namespace, room)
        self._forget_dialect(sid, namespace, room)

    def _forget_dialect(self, sid: str, namespace: str, room: str) -> None:
        variants = self.dialects.get((namespace, room))
        if variants is not None and variants.pop(sid, None) is not None and not variants:
            del self.dialects[namespace, room]

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if callback is not None or room is None or namespace not in self.rooms:
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs
            )
            return
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        # Dialects are per room; an emit to a list of rooms (the bus never does) goes as it is.
        variants = self.dialects.get((namespace, room)) if isinstance(room, str) else None
        plain = _Prepared.of(self.server, event, data, namespace)
        prepared: dict[Dialect, _Prepared | None] = {}
        slow: list[tuple[str, eio_packet.Packet]] = []
        one_by_one: list[tuple[str, _Prepared]] = []
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            delivery = plain
            dialect = variants.get(sid) if variants else None
            if dialect is not None:
                if dialect not in prepared:
                    prepared[dialect] = self._translated(dialect, event, data, namespace)
                translated = prepared[dialect]
                if translated is None:  # the dialect has nothing for this event
                    continue
                delivery = translated
            if delivery.frame is None or delivery.message is None:
                one_by_one.append((sid, delivery))
            elif not self._write(eio_sid, delivery.frame):
                slow.append((eio_sid, delivery.message))
        for eio_sid, message in slow:
            await self.server.eio.send_packet(eio_sid, message)
        for sid, delivery in one_by_one:  # binary attachments: several packets, the ordinary way
            await super().emit(delivery.event, delivery.data, namespace, to=sid, **kwargs)

    def _translated(
        self, dialect: Dialect, event: str, data: Any, namespace: str
    ) -> _Prepared | None:
        if not (isinstance(data, dict) and "payload" in data):  # not an envelope: as it is
            return _Prepared.of(self.server, event, data, namespace)
        translated = dialect.translate(event, data)
        if translated is None:
            return None
        return _Prepared.of(self.server, *translated, namespace)

    def write_one(self, eio_sid: str, encoded: str) -> bool:
        """Write one socket's Socket.IO packet as a frame of its own, if nothing waits in its
        Engine.IO queue (else the packet must queue behind it); False: send it the usual way."""
        socket = self.server.eio.sockets.get(eio_sid)
        if socket is None or not socket.queue.empty():
            return False
        message = eio_packet.Packet(eio_packet.MESSAGE, encoded).encode()
        return self._write(eio_sid, websocket_frame(message.encode()))

    def _write(self, eio_sid: str, frame: bytes) -> bool:
        """Write the frame to the socket's transport; False when it must go the ordinary way."""
        transport = self.transports.get(eio_sid)
        if transport is None or transport.is_closing():
            return False
        socket = self.server.eio.sockets.get(eio_sid)
        if socket is None or not socket.upgraded or socket.upgrading or socket.closing:
            return False
        if transport.get_write_buffer_size() > MAX_BUFFERED_BYTES:
            log.warning("slow_consumer_dropped", eio_sid=eio_sid)
            self.transports.detach(eio_sid)
            transport.abort()
            return True
        transport.write(frame)
        self.frames_written += 1
        return True


class FramingServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server, its packets to one socket written as the room fan-out writes.

    An ack otherwise goes through the socket's Engine.IO queue, wakes its writer task and is
    framed by the ASGI server: at 5,000 reactions a second, each acked, that was a large part of
    the server's time. A packet with binary attachments (several frames), one for a socket on
    long-polling or mid-upgrade, or one behind packets already queued goes the usual way."""

    async def _send_packet(self, eio_sid: str, pkt: sio_packet.Packet) -> None:
        encoded = pkt.encode()
        manager = self.manager
        if (
            isinstance(encoded, str)
            and isinstance(manager, FanoutManager)
            and manager.write_one(eio_sid, encoded)
        ):
            return
        await super()._send_packet(eio_sid, pkt)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: str) -> None:
        await super()._handle_eio_disconnect(eio_sid, reason)
        # A long-polling client that says goodbye (an Engine.IO CLOSE in a POST) still has a
        # GET waiting: python-engineio leaves it open until its ping timeout (45 s), and
        # python-socketio's client waits for it on disconnect. The JS engine.io server
        # answers it with a CLOSE packet at once; so do we.
        socket = self.eio.sockets.get(eio_sid)
        if reason == self.reason.CLIENT_DISCONNECT and socket is not None and not socket.upgraded:
            socket.queue.put_nowait(eio_packet.Packet(eio_packet.CLOSE))


class RedisFanoutManager(socketio.AsyncRedisManager, FanoutManager):  # type: ignore[misc]
    """Events cross nodes through Redis; each node fans them out to its sockets with one frame."""
