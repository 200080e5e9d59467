"""RTMP chunk streams: split messages into chunks and reassemble them, plus control messages.

`ChunkReader` is sans-IO: feed it whatever bytes arrived and it returns the messages they
complete, so every header type, extended timestamps and chunk-size changes are unit-testable
byte by byte. Timestamp deltas follow ffmpeg's reading of the spec: a type 3 header that starts
a new message repeats the previous header's timestamp field (the absolute time after type 0).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

DEFAULT_CHUNK_SIZE = 128
MAX_CHUNK_SIZE = 0x7FFFFFFF
EXTENDED_TIMESTAMP = 0xFFFFFF
CONTROL_CHUNK_STREAM = 2


class MessageType(enum.IntEnum):
    """Message type ids of the RTMP specification."""

    SET_CHUNK_SIZE = 1
    ABORT = 2
    ACKNOWLEDGEMENT = 3
    USER_CONTROL = 4
    WINDOW_ACK_SIZE = 5
    SET_PEER_BANDWIDTH = 6
    AUDIO = 8
    VIDEO = 9
    DATA_AMF3 = 15
    SHARED_OBJECT_AMF3 = 16
    COMMAND_AMF3 = 17
    DATA_AMF0 = 18
    SHARED_OBJECT_AMF0 = 19
    COMMAND_AMF0 = 20
    AGGREGATE = 22


class UserControlEvent(enum.IntEnum):
    """User control event types this server sends or answers."""

    STREAM_BEGIN = 0
    STREAM_EOF = 1
    PING_REQUEST = 6
    PING_RESPONSE = 7


class PeerBandwidthLimit(enum.IntEnum):
    """Limit types of Set Peer Bandwidth."""

    HARD = 0
    SOFT = 1
    DYNAMIC = 2


class RtmpProtocolError(ValueError):
    """The peer broke the chunk protocol; the connection cannot continue."""


class _Need(enum.Enum):
    MORE_BYTES = 0


@dataclass(frozen=True, slots=True)
class RtmpMessage:
    """One reassembled RTMP message."""

    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes
    chunk_stream_id: int = CONTROL_CHUNK_STREAM


@dataclass(slots=True)
class _ChunkStream:
    """What later headers on one chunk stream inherit, and the message being reassembled."""

    timestamp: int = 0
    timestamp_field: int = 0
    extended: bool = False
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    partial: bytearray | None = None


class _Header:
    """One parsed chunk header; fields not in the header come from the chunk stream."""

    def __init__(self, chunk_stream_id: int, fmt: int, state: _ChunkStream) -> None:
        self.chunk_stream_id = chunk_stream_id
        self.fmt = fmt
        self.state = state
        self.field = state.timestamp_field
        self.extended = state.extended
        self.length = state.length
        self.type_id = state.type_id
        self.stream_id = state.stream_id
        self.end = 0


class ChunkReader:
    """Reassemble messages from the chunk stream of one connection.

    Everything it holds is bounded: no message may announce more than `max_message_size`,
    no chunk size over `max_chunk_size` may be set, and the unfinished messages of all chunk
    streams plus the chunk still arriving may not add up past `max_buffered`. The session
    keeps these small until a publish is authorised (`set_limits` then raises them).
    """

    def __init__(
        self,
        *,
        max_message_size: int,
        max_buffered: int | None = None,
        max_chunk_size: int = MAX_CHUNK_SIZE,
    ) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self._streams: dict[int, _ChunkStream] = {}
        self._buffer = bytearray()
        self._pos = 0
        self._buffered = 0
        self.set_limits(
            max_message_size=max_message_size,
            max_buffered=max_buffered,
            max_chunk_size=max_chunk_size,
        )

    def set_limits(
        self,
        *,
        max_message_size: int,
        max_buffered: int | None = None,
        max_chunk_size: int = MAX_CHUNK_SIZE,
    ) -> None:
        """Apply new bounds from the next chunk parsed on (`max_buffered`: 2 messages)."""
        self.max_message_size = max_message_size
        self.max_buffered = max_buffered if max_buffered is not None else 2 * max_message_size
        self.max_chunk_size = max_chunk_size

    def feed(self, data: bytes) -> list[RtmpMessage]:
        """Take the next bytes from the peer; return the messages they complete, in order."""
        self.push(data)
        return list(iter(self.next_message, None))

    def push(self, data: bytes) -> None:
        """Take the next bytes from the peer; `next_message` then parses them."""
        self._buffer += data

    def next_message(self) -> RtmpMessage | None:
        """The next complete message of what was pushed, or None until more bytes arrive.

        One message at a time, so that what the caller does with a message (authorising a
        publish, and with it `set_limits`) applies to the chunks after it.
        """
        while (message := self._read_chunk()) is not _Need.MORE_BYTES:
            if message is not None:
                self._apply_control(message)
                return message
        del self._buffer[: self._pos]
        self._pos = 0
        # What is left is the start of one chunk: it counts with the unfinished messages.
        if self._buffered + len(self._buffer) > self.max_buffered:
            raise RtmpProtocolError(
                f"more than {self.max_buffered} bytes buffered in unfinished messages"
            )
        return None

    def _apply_control(self, message: RtmpMessage) -> None:
        """Chunk-layer control takes effect before the next chunk is parsed."""
        if message.type_id == MessageType.SET_CHUNK_SIZE:
            size = _read_u32(message.payload, "Set Chunk Size") & 0x7FFFFFFF
            if size < 1:
                raise RtmpProtocolError("chunk size must be at least 1")
            if size > self.max_chunk_size:
                raise RtmpProtocolError(
                    f"chunk size {size} exceeds the limit of {self.max_chunk_size}"
                )
            self.chunk_size = size
        elif message.type_id == MessageType.ABORT:
            aborted = self._streams.get(_read_u32(message.payload, "Abort"))
            if aborted is not None and aborted.partial is not None:
                self._buffered -= len(aborted.partial)
                aborted.partial = None

    def _read_header(self) -> _Header | None:
        """Parse the chunk header at the read position; None until all of it has arrived."""
        buf, end = self._buffer, len(self._buffer)
        basic = parse_basic_header(buf, self._pos)
        if basic is None:
            return None
        fmt, csid, pos = basic
        state = self._streams.get(csid)
        if state is None:
            if fmt != 0:
                raise RtmpProtocolError(f"chunk type {fmt} on unknown chunk stream {csid}")
            state = _ChunkStream()
        if state.partial is not None and fmt != 3:
            raise RtmpProtocolError(f"new message header inside a message on chunk stream {csid}")
        header = _Header(csid, fmt, state)
        if pos + (11, 7, 3, 0)[fmt] > end:
            return None
        if fmt < 3:
            header.field = int.from_bytes(buf[pos : pos + 3], "big")
            header.extended = header.field == EXTENDED_TIMESTAMP
            pos += 3
        if fmt < 2:
            header.length = int.from_bytes(buf[pos : pos + 3], "big")
            header.type_id = buf[pos + 3]
            pos += 4
        if fmt == 0:
            header.stream_id = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        if header.extended:
            if pos + 4 > end:
                return None
            # A continuation chunk repeats the extended timestamp; its value is already known.
            if state.partial is None:
                header.field = int.from_bytes(buf[pos : pos + 4], "big")
            pos += 4
        if header.length > self.max_message_size:
            raise RtmpProtocolError(
                f"message of {header.length} bytes exceeds the limit of {self.max_message_size}"
            )
        header.end = pos
        return header

    def _read_chunk(self) -> RtmpMessage | _Need | None:
        """Parse one chunk: the message it completes, None (message incomplete) or
        `MORE_BYTES` (the chunk has not fully arrived; nothing is consumed)."""
        header = self._read_header()
        if header is None:
            return _Need.MORE_BYTES
        state = header.state
        received = len(state.partial) if state.partial is not None else 0
        start = header.end
        stop = start + min(self.chunk_size, header.length - received)
        if stop > len(self._buffer):
            return _Need.MORE_BYTES

        # The whole chunk is here: commit its header and payload.
        self._pos = stop
        self._streams[header.chunk_stream_id] = state
        partial = state.partial
        if partial is None:
            if header.fmt == 0:
                state.timestamp = header.field
            else:
                state.timestamp = (state.timestamp + header.field) & 0xFFFFFFFF
            state.timestamp_field = header.field
            state.extended = header.extended
            state.length, state.type_id = header.length, header.type_id
            state.stream_id = header.stream_id
            partial = state.partial = bytearray()
        partial += self._buffer[start:stop]
        self._buffered += stop - start
        if len(partial) < state.length:
            if self._buffered > self.max_buffered:
                raise RtmpProtocolError(
                    f"more than {self.max_buffered} bytes buffered in unfinished messages"
                )
            return None
        self._buffered -= len(partial)
        state.partial = None
        return RtmpMessage(
            state.type_id, state.stream_id, state.timestamp, bytes(partial), header.chunk_stream_id
        )


def parse_basic_header(data: bytes | bytearray, pos: int) -> tuple[int, int, int] | None:
    """Return (header type, chunk stream id, offset after) of the basic header at `pos`."""
    if pos >= len(data):
        return None
    fmt, csid = data[pos] >> 6, data[pos] & 0x3F
    pos += 1
    if csid in (0, 1):
        # 0: one more byte (ids 64-319); 1: two more, little-endian (ids 64-65599).
        extra = csid + 1
        if pos + extra > len(data):
            return None
        csid = 64 + int.from_bytes(data[pos : pos + extra], "little")
        pos += extra
    return fmt, csid, pos


def _read_u32(payload: bytes, what: str) -> int:
    if len(payload) < 4:
        raise RtmpProtocolError(f"{what} message too short")
    value: int = struct.unpack_from(">I", payload)[0]
    return value


def _basic_header(fmt: int, csid: int) -> bytes:
    if 2 <= csid <= 63:
        return bytes(((fmt << 6) | csid,))
    if 64 <= csid <= 319:
        return bytes((fmt << 6, csid - 64))
    if 320 <= csid <= 65599:
        return bytes(((fmt << 6) | 1,)) + (csid - 64).to_bytes(2, "little")
    raise ValueError(f"chunk stream id {csid} out of range")


def encode_message(message: RtmpMessage, chunk_size: int) -> bytes:
    """Split a message into chunks: a type 0 header, then type 3 headers."""
    if len(message.payload) > 0xFFFFFF:
        raise ValueError("message longer than 16 MiB")
    timestamp = message.timestamp & 0xFFFFFFFF
    extended = timestamp >= EXTENDED_TIMESTAMP
    extended_bytes = struct.pack(">I", timestamp) if extended else b""
    header = (
        _basic_header(0, message.chunk_stream_id)
        + min(timestamp, EXTENDED_TIMESTAMP).to_bytes(3, "big")
        + len(message.payload).to_bytes(3, "big")
        + bytes((message.type_id,))
        + message.stream_id.to_bytes(4, "little")
        + extended_bytes
    )
    continuation = _basic_header(3, message.chunk_stream_id) + extended_bytes
    payload = message.payload
    parts = [header, payload[:chunk_size]]
    for start in range(chunk_size, len(payload), chunk_size):
        parts += (continuation, payload[start : start + chunk_size])
    return b"".join(parts)


def _control(type_id: MessageType, payload: bytes) -> RtmpMessage:
    return RtmpMessage(type_id, 0, 0, payload, CONTROL_CHUNK_STREAM)


def set_chunk_size(size: int) -> RtmpMessage:
    """Tell the peer the size of the chunks we send from now on."""
    return _control(MessageType.SET_CHUNK_SIZE, struct.pack(">I", size))


def acknowledgement(sequence_number: int) -> RtmpMessage:
    """Acknowledge the bytes received so far."""
    return _control(MessageType.ACKNOWLEDGEMENT, struct.pack(">I", sequence_number & 0xFFFFFFFF))


def window_ack_size(size: int) -> RtmpMessage:
    """Ask the peer to acknowledge every `size` bytes it receives."""
    return _control(MessageType.WINDOW_ACK_SIZE, struct.pack(">I", size))


def set_peer_bandwidth(size: int, limit: PeerBandwidthLimit) -> RtmpMessage:
    """Limit the peer's output bandwidth (its window of unacknowledged bytes)."""
    return _control(MessageType.SET_PEER_BANDWIDTH, struct.pack(">IB", size, limit))


def user_control(event: UserControlEvent, value: int) -> RtmpMessage:
    """A user control message carrying one 32-bit value (stream id or ping time)."""
    return _control(MessageType.USER_CONTROL, struct.pack(">HI", event, value & 0xFFFFFFFF))
