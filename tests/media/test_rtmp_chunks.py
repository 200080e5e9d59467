"""The handshake and the chunk stream, byte by byte."""

from __future__ import annotations

import pytest

from stagecast.media.rtmp.chunks import (
    ChunkReader,
    MessageType,
    PeerBandwidthLimit,
    RtmpMessage,
    RtmpProtocolError,
    UserControlEvent,
    acknowledgement,
    encode_message,
    parse_basic_header,
    set_chunk_size,
    set_peer_bandwidth,
    user_control,
    window_ack_size,
)
from stagecast.media.rtmp.handshake import HandshakeError, server_handshake

RANDOM = bytes(range(256)) * 5 + bytes(248)


def reader() -> ChunkReader:
    return ChunkReader(max_message_size=1 << 20)


def header0(csid: int, timestamp: int, length: int, type_id: int, stream_id: int) -> bytes:
    return (
        bytes((csid,))
        + timestamp.to_bytes(3, "big")
        + length.to_bytes(3, "big")
        + bytes((type_id,))
        + stream_id.to_bytes(4, "little")
    )


# Handshake


def test_handshake_answers_version_3_and_echoes_c1() -> None:
    c1 = bytes(8) + bytes(range(256)) * 5 + bytes(248)
    reply = server_handshake(b"\x03" + c1, server_time=0x01020304, random=RANDOM)
    assert len(reply) == 1 + 1536 + 1536
    assert reply[0] == 3
    assert reply[1:9] == bytes.fromhex("01020304 00000000")
    assert reply[9:1537] == RANDOM
    assert reply[1537:] == c1


def test_handshake_accepts_a_complex_handshake_c1() -> None:
    # ffmpeg and librtmp put their version (e.g. 9.0.124.2) where simple clients put zeros.
    c1 = bytes.fromhex("00000000 0900 7c02") + bytes(1528)
    reply = server_handshake(b"\x03" + c1, server_time=0, random=RANDOM)
    assert reply[1537:] == c1


@pytest.mark.parametrize(
    "c0c1",
    [b"\x06" + bytes(1536), b"G" + bytes(1536), b"\x03" + bytes(100), b""],
)
def test_handshake_refuses_other_versions_and_short_input(c0c1: bytes) -> None:
    with pytest.raises(HandshakeError):
        server_handshake(c0c1, server_time=0, random=RANDOM)


# Basic header


@pytest.mark.parametrize(
    ("data", "parsed"),
    [
        (b"\x03", (0, 3, 1)),
        (b"\xc5", (3, 5, 1)),
        (b"\x40\x0a", (1, 74, 2)),
        (b"\x81\x00\x01", (2, 64 + 256, 3)),
        (b"\x00", None),
        (b"\x01\x00", None),
    ],
)
def test_basic_header_one_two_and_three_bytes(
    data: bytes, parsed: tuple[int, int, int] | None
) -> None:
    assert parse_basic_header(data, 0) == parsed


# Reading each header type


def test_type_0_header_carries_everything() -> None:
    data = header0(3, 100, 5, MessageType.COMMAND_AMF0, 1) + b"hello"
    assert reader().feed(data) == [RtmpMessage(20, 1, 100, b"hello", 3)]


def test_types_1_2_and_3_inherit_from_the_chunk_stream() -> None:
    chunks = reader()
    data = (
        header0(4, 100, 3, MessageType.AUDIO, 1)
        + b"abc"
        # type 1: delta 10, new length 2 and type video; stream id inherited
        + b"\x44"
        + (10).to_bytes(3, "big")
        + (2).to_bytes(3, "big")
        + b"\x09"
        + b"de"
        # type 2: delta 5, length and type inherited
        + b"\x84"
        + (5).to_bytes(3, "big")
        + b"fg"
        # type 3 starting a message: everything inherited, the delta again
        + b"\xc4"
        + b"hi"
    )
    assert chunks.feed(data) == [
        RtmpMessage(8, 1, 100, b"abc", 4),
        RtmpMessage(9, 1, 110, b"de", 4),
        RtmpMessage(9, 1, 115, b"fg", 4),
        RtmpMessage(9, 1, 120, b"hi", 4),
    ]


def test_type_3_after_type_0_repeats_the_timestamp_field() -> None:
    # ffmpeg's reading (and writing) of the spec: the field of a type 0 header is the delta.
    data = header0(4, 40, 1, MessageType.VIDEO, 1) + b"a" + b"\xc4" + b"b"
    assert [m.timestamp for m in reader().feed(data)] == [40, 80]


def test_type_3_continues_a_message_over_chunks() -> None:
    payload = bytes(range(256)) + bytes(44)
    data = (
        header0(6, 7, 300, MessageType.VIDEO, 1)
        + payload[:128]
        + b"\xc6"
        + payload[128:256]
        + b"\xc6"
        + payload[256:]
    )
    assert reader().feed(data) == [RtmpMessage(9, 1, 7, payload, 6)]


def test_extended_timestamp_on_type_0_and_its_continuations() -> None:
    payload = bytes(200)
    extended = (0x01000000).to_bytes(4, "big")
    data = (
        header0(6, 0xFFFFFF, 200, MessageType.VIDEO, 1)
        + extended
        + payload[:128]
        + b"\xc6"
        + extended
        + payload[128:]
    )
    assert reader().feed(data) == [RtmpMessage(9, 1, 0x01000000, payload, 6)]


def test_extended_delta_on_type_1() -> None:
    data = (
        header0(6, 1000, 1, MessageType.AUDIO, 1)
        + b"a"
        + b"\x46"
        + b"\xff\xff\xff"
        + (1).to_bytes(3, "big")
        + b"\x08"
        + (0x02000000).to_bytes(4, "big")
        + b"b"
    )
    assert [m.timestamp for m in reader().feed(data)] == [1000, 1000 + 0x02000000]


def test_timestamps_wrap_at_32_bits() -> None:
    data = (
        header0(6, 0xFFFFFF, 1, MessageType.AUDIO, 1)
        + (0xFFFFFFF0).to_bytes(4, "big")
        + b"a"
        + b"\x86"
        + (0x20).to_bytes(3, "big")
        + b"b"
    )
    assert [m.timestamp for m in reader().feed(data)] == [0xFFFFFFF0, 0x10]


def test_interleaved_chunk_streams_reassemble_independently() -> None:
    video = bytes([1]) * 300
    audio = bytes([2]) * 200
    data = (
        header0(6, 0, 300, MessageType.VIDEO, 1)
        + video[:128]
        + header0(4, 0, 200, MessageType.AUDIO, 1)
        + audio[:128]
        + b"\xc6"
        + video[128:256]
        + b"\xc4"
        + audio[128:]
        + b"\xc6"
        + video[256:]
    )
    assert reader().feed(data) == [
        RtmpMessage(8, 1, 0, audio, 4),
        RtmpMessage(9, 1, 0, video, 6),
    ]


def test_chunk_size_change_applies_to_the_next_chunk() -> None:
    chunks = reader()
    payload = bytes(range(250))
    data = (
        encode_message(set_chunk_size(200), 128)
        + header0(6, 0, 250, MessageType.VIDEO, 1)
        + payload[:200]
        + b"\xc6"
        + payload[200:]
    )
    messages = chunks.feed(data)
    assert [m.type_id for m in messages] == [MessageType.SET_CHUNK_SIZE, MessageType.VIDEO]
    assert messages[1].payload == payload
    assert chunks.chunk_size == 200


def test_bytes_may_arrive_one_at_a_time() -> None:
    data = (
        header0(6, 0xFFFFFF, 300, MessageType.VIDEO, 1)
        + (0x01000000).to_bytes(4, "big")
        + bytes(128)
        + b"\xc6"
        + (0x01000000).to_bytes(4, "big")
        + bytes(128)
        + b"\xc6"
        + (0x01000000).to_bytes(4, "big")
        + bytes(44)
        + b"\x46"
        + (5).to_bytes(3, "big")
        + (3).to_bytes(3, "big")
        + b"\x08abc"
    )
    chunks = reader()
    messages = [m for i in range(len(data)) for m in chunks.feed(data[i : i + 1])]
    assert messages == [
        RtmpMessage(9, 1, 0x01000000, bytes(300), 6),
        RtmpMessage(8, 1, 0x01000005, b"abc", 6),
    ]


def test_empty_messages_complete_at_once() -> None:
    assert reader().feed(header0(3, 0, 0, MessageType.COMMAND_AMF0, 0)) == [
        RtmpMessage(20, 0, 0, b"", 3)
    ]


def test_abort_drops_the_partial_message() -> None:
    chunks = reader()
    data = (
        header0(6, 0, 300, MessageType.VIDEO, 1)
        + bytes(128)
        + encode_message(RtmpMessage(MessageType.ABORT, 0, 0, (6).to_bytes(4, "big")), 128)
        + header0(6, 9, 1, MessageType.VIDEO, 1)
        + b"z"
    )
    assert chunks.feed(data)[-1] == RtmpMessage(9, 1, 9, b"z", 6)


# Refusing bad chunk streams


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xc5" + bytes(10), id="type 3 on unknown chunk stream"),
        pytest.param(b"\x45" + bytes(10), id="type 1 on unknown chunk stream"),
        pytest.param(header0(6, 0, 0x200000, 9, 1), id="message over the size limit"),
        pytest.param(
            header0(6, 0, 300, 9, 1) + bytes(128) + header0(6, 0, 10, 9, 1),
            id="new header inside a message",
        ),
        pytest.param(
            encode_message(RtmpMessage(MessageType.SET_CHUNK_SIZE, 0, 0, bytes(4)), 128),
            id="chunk size 0",
        ),
        pytest.param(
            encode_message(RtmpMessage(MessageType.SET_CHUNK_SIZE, 0, 0, b"\x01"), 128),
            id="short set chunk size",
        ),
    ],
)
def test_bad_chunk_streams_raise(data: bytes) -> None:
    with pytest.raises(RtmpProtocolError):
        reader().feed(data)


def test_partial_messages_on_many_streams_are_bounded() -> None:
    chunks = ChunkReader(max_message_size=1000, max_buffered=1500)
    data = b"".join(header0(csid, 0, 1000, 9, 1) + bytes(128) for csid in range(3, 20))
    with pytest.raises(RtmpProtocolError, match="buffered"):
        chunks.feed(data)


def test_a_chunk_still_arriving_counts_toward_the_bound() -> None:
    # With a large chunk size a whole message is one chunk, held until it is complete.
    chunks = ChunkReader(max_message_size=1000, max_buffered=500)
    chunks.feed(encode_message(set_chunk_size(4096), 128))
    assert chunks.feed(header0(6, 0, 1000, 9, 1) + bytes(480)) == []
    with pytest.raises(RtmpProtocolError, match="more than 500 bytes buffered"):
        chunks.feed(bytes(40))


def test_chunk_size_over_the_limit_is_refused() -> None:
    chunks = ChunkReader(max_message_size=1 << 20, max_chunk_size=65536)
    chunks.feed(encode_message(set_chunk_size(65536), 128))
    assert chunks.chunk_size == 65536
    with pytest.raises(RtmpProtocolError, match="chunk size 65537 exceeds the limit of 65536"):
        chunks.feed(encode_message(set_chunk_size(65537), 128))


def test_new_limits_apply_from_the_next_message() -> None:
    small, large = RtmpMessage(20, 0, 0, b"publish", 3), RtmpMessage(9, 1, 0, bytes(5000), 6)
    data = encode_message(small, 128) + encode_message(large, 128)

    chunks = ChunkReader(max_message_size=1000)
    chunks.push(data)
    assert chunks.next_message() == small
    chunks.set_limits(max_message_size=10_000)
    assert chunks.next_message() == large
    assert chunks.next_message() is None

    unchanged = ChunkReader(max_message_size=1000)
    unchanged.push(data)
    assert unchanged.next_message() == small
    with pytest.raises(RtmpProtocolError, match="5000 bytes exceeds the limit of 1000"):
        unchanged.next_message()


# Writing


def test_encode_uses_type_0_then_type_3() -> None:
    message = RtmpMessage(MessageType.VIDEO, 1, 1000, bytes(range(200)), 6)
    encoded = encode_message(message, 128)
    assert encoded == (
        header0(6, 1000, 200, 9, 1) + bytes(range(128)) + b"\xc6" + bytes(range(128, 200))
    )


def test_encode_repeats_the_extended_timestamp_and_round_trips() -> None:
    message = RtmpMessage(MessageType.AUDIO, 1, 0x12345678, bytes(1000), 400)
    encoded = encode_message(message, 128)
    assert encoded[:3] == b"\x01" + (400 - 64).to_bytes(2, "little")
    assert encoded.count((0x12345678).to_bytes(4, "big")) == 8
    assert reader().feed(encoded) == [message]


@pytest.mark.parametrize(
    ("message", "encoded"),
    [
        (set_chunk_size(4096), "02 000000 000004 01 00000000 00001000"),
        (acknowledgement(2**32 + 5), "02 000000 000004 03 00000000 00000005"),
        (window_ack_size(2_500_000), "02 000000 000004 05 00000000 002625a0"),
        (
            set_peer_bandwidth(2_500_000, PeerBandwidthLimit.DYNAMIC),
            "02 000000 000005 06 00000000 002625a0 02",
        ),
        (
            user_control(UserControlEvent.STREAM_BEGIN, 1),
            "02 000000 000006 04 00000000 0000 00000001",
        ),
    ],
)
def test_control_messages_bytes(message: RtmpMessage, encoded: str) -> None:
    assert encode_message(message, 128) == bytes.fromhex(encoded)
