"""The RTMP server against a raw-socket client, bad input, and real ffmpeg publishers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest

from stagecast.addresses import client_address
from stagecast.config import MediaSettings
from stagecast.media.rtmp import (
    FlvTag,
    PublishRefused,
    PublishRequest,
    PublishSink,
    RtmpLimits,
    RtmpServer,
    TagType,
    amf0,
    flv_header,
    resolve_stream_key,
)
from stagecast.media.rtmp import server as rtmp_server
from stagecast.media.rtmp import session as rtmp_session
from stagecast.media.rtmp.chunks import (
    ChunkReader,
    MessageType,
    RtmpMessage,
    UserControlEvent,
    encode_message,
    set_chunk_size,
    user_control,
    window_ack_size,
)
from tests.conftest import make_settings
from tests.media.conftest import eventually, media_settings, serve_media, start_publisher

GOOD_KEY = "good-key"
FAST = RtmpLimits(handshake_timeout=2.0, read_timeout=2.0, close_timeout=2.0)
AVC_SEQUENCE_HEADER = b"\x17\x00\x00\x00\x00\x01\x42\xc0\x1e\xff\xe1\x00\x00\x01\x00\x00"
AAC_SEQUENCE_HEADER = b"\xaf\x00\x12\x10"


class RecordingSink:
    """A sink that keeps everything it gets and the FLV bytes a pipeline would read."""

    def __init__(self, request: PublishRequest, gate: asyncio.Event | None = None) -> None:
        self.request = request
        self.gate = gate
        self.metadata: list[dict[str, amf0.AmfValue]] = []
        self.tags: list[FlvTag] = []
        self.flv = bytearray(flv_header())
        self.closed: list[str] = []
        self.closed_event = asyncio.Event()

    async def on_metadata(self, metadata: dict[str, amf0.AmfValue]) -> None:
        self.metadata.append(metadata)

    async def on_tag(self, tag: FlvTag) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.tags.append(tag)
        self.flv += tag.to_bytes()

    async def on_close(self, reason: str) -> None:
        self.closed.append(reason)
        self.closed_event.set()

    def kinds(self, tag_type: TagType) -> list[FlvTag]:
        return [tag for tag in self.tags if tag.tag_type == tag_type]


class Ingest:
    """An authorize callback accepting known keys, one live publisher per key."""

    def __init__(self, keys: set[str], gate: asyncio.Event | None = None) -> None:
        self.keys = keys
        self.gate = gate
        self.sinks: list[RecordingSink] = []
        self.live: set[str] = set()
        self.server: RtmpServer | None = None

    async def authorize(self, request: PublishRequest) -> PublishSink:
        if request.stream_key not in self.keys:
            raise PublishRefused("Unknown stream key.")
        assert self.server is not None
        if any(p.stream_key == request.stream_key for p in self.server.publishers):
            raise PublishRefused("This stream key is already live.")
        sink = RecordingSink(request, self.gate)
        self.sinks.append(sink)
        return sink

    def sink(self, key: str) -> RecordingSink:
        return next(s for s in reversed(self.sinks) if s.request.stream_key == key)


async def start_ingest(
    keys: set[str] | None = None, limits: RtmpLimits = FAST, gate: asyncio.Event | None = None
) -> tuple[Ingest, RtmpServer]:
    ingest = Ingest(keys or {GOOD_KEY, "other-key"}, gate)
    server = RtmpServer(ingest.authorize, host="127.0.0.1", port=0, limits=limits)
    ingest.server = server
    await server.start()
    return ingest, server


@pytest.fixture
async def ingest() -> AsyncIterator[Ingest]:
    ingest, server = await start_ingest()
    yield ingest
    await server.close()


class LogRecorder:
    """Stands in for the session's structlog logger."""

    def __init__(self, events: list[tuple[str, str, dict[str, Any]]] | None = None) -> None:
        self.events = events if events is not None else []
        self.context: dict[str, Any] = {}

    def bind(self, **context: Any) -> LogRecorder:
        bound = LogRecorder(self.events)
        bound.context = {**self.context, **context}
        return bound

    def _record(self, level: str, event: str, **values: Any) -> None:
        self.events.append((level, event, {**self.context, **values}))

    def debug(self, event: str, **values: Any) -> None:
        self._record("debug", event, **values)

    def info(self, event: str, **values: Any) -> None:
        self._record("info", event, **values)

    def warning(self, event: str, **values: Any) -> None:
        self._record("warning", event, **values)

    def exception(self, event: str, **values: Any) -> None:
        self._record("exception", event, **values)

    def closes(self) -> list[tuple[str, str]]:
        return [(lvl, v["reason"]) for lvl, e, v in self.events if e == "rtmp_connection_closed"]


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> LogRecorder:
    recorder = LogRecorder()
    monkeypatch.setattr(rtmp_session, "log", recorder)
    monkeypatch.setattr(rtmp_server, "log", recorder)
    return recorder


class RawClient:
    """The smallest RTMP publisher: raw bytes out, our chunk reader for the replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.chunks = ChunkReader(max_message_size=1 << 24)
        self.pending: list[RtmpMessage] = []
        self.chunk_size = 128
        self.transaction = 1
        self.sent = 0

    @classmethod
    async def open(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def handshake(self) -> bytes:
        c1 = struct.pack(">II", 0, 0) + os.urandom(1528)
        self.writer.write(b"\x03" + c1)
        reply = await self.reader.readexactly(1 + 1536 + 1536)
        self.writer.write(reply[1:1537])  # C2 echoes S1
        self.sent += 1 + 1536 + 1536
        await self.writer.drain()
        assert reply[0] == 3
        assert reply[1537:] == c1
        return reply

    def send(self, message: RtmpMessage) -> None:
        data = encode_message(message, self.chunk_size)
        self.writer.write(data)
        self.sent += len(data)

    def set_chunk_size(self, size: int) -> None:
        self.send(set_chunk_size(size))
        self.chunk_size = size

    def command(self, name: str, *args: amf0.AmfValue, stream_id: int = 0) -> None:
        self.transaction += 1
        payload = amf0.encode(name, self.transaction, *args)
        self.send(RtmpMessage(MessageType.COMMAND_AMF0, stream_id, 0, payload, 3))

    def media(self, type_id: int, timestamp: int, payload: bytes) -> None:
        self.send(RtmpMessage(type_id, 1, timestamp, payload, 6 if type_id == 9 else 4))

    async def receive(self) -> RtmpMessage:
        while not self.pending:
            async with asyncio.timeout(5):
                data = await self.reader.read(65536)
            if not data:
                raise EOFError
            self.pending.extend(self.chunks.feed(data))
        return self.pending.pop(0)

    async def expect_command(self, name: str) -> list[amf0.AmfValue]:
        while True:
            message = await self.receive()
            if message.type_id == MessageType.COMMAND_AMF0:
                values = amf0.decode(message.payload)
                if values[0] == name:
                    return values

    async def connect(self, app: str = "live") -> list[amf0.AmfValue]:
        await self.handshake()
        self.command("connect", {"app": app, "type": "nonprivate", "flashVer": "FMLE/3.0"})
        return await self.expect_command("_result")

    async def publish(self, name: str = GOOD_KEY, app: str = "live") -> dict[str, amf0.AmfValue]:
        await self.connect(app)
        self.command("releaseStream", None, name)
        self.command("FCPublish", None, name)
        self.command("createStream", None)
        await self.writer.drain()
        while (await self.expect_command("_result"))[3] is amf0.UNDEFINED:
            pass  # releaseStream and FCPublish answers; createStream's carries the stream id
        self.command("publish", None, name, "live", stream_id=1)
        await self.writer.drain()
        status = await self.expect_command("onStatus")
        assert isinstance(status[3], dict)
        return status[3]

    async def wait_closed(self, within: float = 5) -> None:
        """Read until the server closes the connection (a reset, when it left bytes unread)."""
        async with asyncio.timeout(within):
            with contextlib.suppress(ConnectionResetError):
                while await self.reader.read(65536):
                    pass

    def close(self) -> None:
        self.writer.close()


async def publish_and_stop(port: int, ingest: Ingest, key: str = GOOD_KEY) -> RecordingSink:
    """Publish a sequence header and one frame, unpublish, return the sink that got them."""
    client = await RawClient.open(port)
    status = await client.publish(key)
    assert status["code"] == "NetStream.Publish.Start"
    client.media(MessageType.VIDEO, 0, AVC_SEQUENCE_HEADER)
    client.command("deleteStream", None, 1)
    await client.expect_command("onStatus")
    client.close()
    sink = ingest.sink(key)
    await asyncio.wait_for(sink.closed_event.wait(), 5)
    assert sink.tags == [FlvTag(TagType.VIDEO, 0, AVC_SEQUENCE_HEADER)]
    return sink


# Stream keys


@pytest.mark.parametrize(
    ("app", "name", "resolved"),
    [
        ("live", "abc", ("live", "abc", "")),  # OBS "Custom": server rtmp://host/live
        ("live/abc", "", ("live", "abc", "")),  # the key in the server URL
        ("live/abc", "abc", ("live", "abc", "")),
        ("live/", "abc?token=1", ("live", "abc", "token=1")),
        ("live?x=1", "abc", ("live", "abc", "x=1")),
        ("live", "", ("live", "", "")),
    ],
)
def test_resolve_stream_key(app: str, name: str, resolved: tuple[str, str, str]) -> None:
    assert resolve_stream_key(app, name) == resolved


# The publish conversation


async def test_publish_conversation_as_obs_and_ffmpeg_expect(ingest: Ingest) -> None:
    assert ingest.server is not None
    client = await RawClient.open(ingest.server.port)
    await client.handshake()
    client.command("connect", {"app": "live", "tcUrl": "rtmp://h/live", "flashVer": "OBS"})
    controls = [await client.receive() for _ in range(3)]
    assert [(m.type_id, m.payload) for m in controls] == [
        (MessageType.WINDOW_ACK_SIZE, (2_500_000).to_bytes(4, "big")),
        (MessageType.SET_PEER_BANDWIDTH, (2_500_000).to_bytes(4, "big") + b"\x02"),
        (MessageType.SET_CHUNK_SIZE, (4096).to_bytes(4, "big")),
    ]
    result = await client.expect_command("_result")
    assert result[1] == 2
    assert result[3] == {
        "level": "status",
        "code": "NetConnection.Connect.Success",
        "description": "Connection succeeded.",
        "objectEncoding": 0.0,
    }

    client.command("releaseStream", None, GOOD_KEY)
    assert await client.expect_command("_result") == ["_result", 3.0, None, amf0.UNDEFINED]
    client.command("FCPublish", None, GOOD_KEY)
    assert await client.expect_command("_result") == ["_result", 4.0, None, amf0.UNDEFINED]
    client.command("createStream", None)
    assert await client.expect_command("_result") == ["_result", 5.0, None, 1.0]
    client.command("publish", None, GOOD_KEY, "live", stream_id=1)
    begin = await client.receive()
    assert (begin.type_id, begin.payload) == (
        MessageType.USER_CONTROL,
        bytes.fromhex("0000 00000001"),
    )
    status = await client.receive()
    assert status.stream_id == 1
    assert amf0.decode(status.payload)[3] == {
        "level": "status",
        "code": "NetStream.Publish.Start",
        "description": f"{GOOD_KEY} is now published.",
    }

    metadata = amf0.EcmaArray(width=320.0, height=240.0, videocodecid=7.0)
    client.send(
        RtmpMessage(
            MessageType.DATA_AMF0, 1, 0, amf0.encode("@setDataFrame", "onMetaData", metadata), 4
        )
    )
    client.media(MessageType.VIDEO, 0, AVC_SEQUENCE_HEADER)
    client.media(MessageType.AUDIO, 0, AAC_SEQUENCE_HEADER)
    client.media(MessageType.VIDEO, 33, b"\x17\x01\x00\x00\x00" + bytes(500))
    client.command("FCUnpublish", None, GOOD_KEY)
    unpublished = await client.expect_command("onStatus")
    assert isinstance(unpublished[3], dict)
    assert unpublished[3]["code"] == "NetStream.Unpublish.Success"
    client.command("deleteStream", None, 1)
    client.close()

    sink = ingest.sink(GOOD_KEY)
    await asyncio.wait_for(sink.closed_event.wait(), 5)
    assert sink.request.app == "live"
    assert sink.request.encoder == "OBS"
    assert sink.metadata == [{"width": 320.0, "height": 240.0, "videocodecid": 7.0}]
    assert [tag.tag_type for tag in sink.tags] == [
        TagType.SCRIPT,
        TagType.VIDEO,
        TagType.AUDIO,
        TagType.VIDEO,
    ]
    assert sink.tags[0].payload == amf0.encode("onMetaData", metadata)
    assert sink.tags[3] == FlvTag(TagType.VIDEO, 33, b"\x17\x01\x00\x00\x00" + bytes(500))
    assert sink.closed == ["unpublished"]
    assert ingest.server.publishers == []


async def test_key_in_the_app_path_and_query_strings(ingest: Ingest) -> None:
    assert ingest.server is not None
    client = await RawClient.open(ingest.server.port)
    status = await client.publish(name="?token=abc", app=f"live/{GOOD_KEY}")
    assert status["code"] == "NetStream.Publish.Start"
    [request] = ingest.server.publishers
    assert (request.app, request.stream_key, request.query) == ("live", GOOD_KEY, "token=abc")
    client.close()


async def test_client_chunk_size_and_large_messages(ingest: Ingest) -> None:
    assert ingest.server is not None
    client = await RawClient.open(ingest.server.port)
    await client.publish()
    client.set_chunk_size(1000)
    keyframe = b"\x17\x01\x00\x00\x00" + os.urandom(100_000)
    client.media(MessageType.VIDEO, 0xFFFFFF + 10, keyframe)  # extended timestamp too
    client.set_chunk_size(64)
    client.media(MessageType.AUDIO, 0xFFFFFF + 20, b"\xaf\x01" + bytes(300))
    client.close()
    sink = ingest.sink(GOOD_KEY)
    await asyncio.wait_for(sink.closed_event.wait(), 5)
    assert sink.tags == [
        FlvTag(TagType.VIDEO, 0xFFFFFF + 10, keyframe),
        FlvTag(TagType.AUDIO, 0xFFFFFF + 20, b"\xaf\x01" + bytes(300)),
    ]


async def test_acknowledgements_follow_the_window() -> None:
    _, server = await start_ingest(limits=RtmpLimits(ack_window=20_000))
    try:
        client = await RawClient.open(server.port)
        await client.publish()

        async def send_then_ping(ping: int, frames: int = 12) -> list[int]:
            """Send 10 kB video frames, then a ping; return the acks that come before the pong."""
            for timestamp in range(frames):
                client.media(MessageType.VIDEO, timestamp, b"\x27\x01" + bytes(10_000))
                await client.writer.drain()
            client.send(user_control(UserControlEvent.PING_REQUEST, ping))
            await client.writer.drain()
            acks = []
            while True:
                message = await client.receive()
                if message.type_id == MessageType.ACKNOWLEDGEMENT:
                    acks.append(int.from_bytes(message.payload, "big"))
                    assert 20_000 <= acks[-1] <= client.sent
                elif message.type_id == MessageType.USER_CONTROL:
                    assert message.payload == bytes.fromhex("0007") + ping.to_bytes(4, "big")
                    return acks

        acks = await send_then_ping(1)
        assert len(acks) >= 2
        assert all(later - earlier >= 20_000 for earlier, later in itertools.pairwise(acks))
        # The peer's own Window Acknowledgement Size takes over.
        client.send(window_ack_size(10**9))
        await send_then_ping(2, frames=0)
        assert await send_then_ping(3) == []
        client.close()
    finally:
        await server.close()


async def test_refused_key_gets_bad_name_then_close(ingest: Ingest) -> None:
    assert ingest.server is not None
    client = await RawClient.open(ingest.server.port)
    status = await client.publish("wrong-key")
    assert status == {
        "level": "error",
        "code": "NetStream.Publish.BadName",
        "description": "Unknown stream key.",
    }
    await client.wait_closed()
    assert ingest.sinks == []


async def test_second_publisher_on_a_live_key_is_refused(ingest: Ingest) -> None:
    assert ingest.server is not None
    first = await RawClient.open(ingest.server.port)
    await first.publish()
    second = await RawClient.open(ingest.server.port)
    status = await second.publish()
    assert status["description"] == "This stream key is already live."
    await second.wait_closed()
    first.media(MessageType.VIDEO, 0, AVC_SEQUENCE_HEADER)
    first.close()
    sink = ingest.sink(GOOD_KEY)
    await asyncio.wait_for(sink.closed_event.wait(), 5)
    assert len(sink.tags) == 1


async def test_unknown_app_is_rejected_at_connect(ingest: Ingest) -> None:
    assert ingest.server is not None
    client = await RawClient.open(ingest.server.port)
    await client.handshake()
    client.command("connect", {"app": "vod"})
    error = await client.expect_command("_error")
    assert isinstance(error[3], dict)
    assert error[3]["code"] == "NetConnection.Connect.Rejected"
    await client.wait_closed()


async def test_disconnect_kicks_the_publisher_of_a_key(ingest: Ingest) -> None:
    assert ingest.server is not None
    kicked = await RawClient.open(ingest.server.port)
    await kicked.publish()
    other = await RawClient.open(ingest.server.port)
    await other.publish("other-key")
    assert await ingest.server.disconnect(GOOD_KEY, "stream key regenerated") == 1
    await kicked.wait_closed()
    assert ingest.sink(GOOD_KEY).closed == ["stream key regenerated"]
    assert [p.stream_key for p in ingest.server.publishers] == ["other-key"]
    assert await ingest.server.disconnect("nobody") == 0
    other.close()


async def test_sink_refusal_mid_stream_reaches_the_publisher() -> None:
    class LimitedSink(RecordingSink):
        async def on_metadata(self, metadata: dict[str, amf0.AmfValue]) -> None:
            raise PublishRefused(
                "1080p is over this server's limit.", code="NetStream.Publish.Rejected"
            )

    async def authorize(request: PublishRequest) -> PublishSink:
        sinks.append(LimitedSink(request))
        return sinks[-1]

    sinks: list[LimitedSink] = []
    async with RtmpServer(authorize, host="127.0.0.1", port=0, limits=FAST) as server:
        client = await RawClient.open(server.port)
        await client.publish()
        payload = amf0.encode("@setDataFrame", "onMetaData", {"height": 1080.0})
        client.send(RtmpMessage(MessageType.DATA_AMF0, 1, 0, payload, 4))
        status = await client.expect_command("onStatus")
        assert isinstance(status[3], dict)
        assert status[3]["code"] == "NetStream.Publish.Rejected"
        await client.wait_closed()
        assert sinks[0].closed == ["publish refused: 1080p is over this server's limit."]


async def test_closing_the_server_ends_every_publish() -> None:
    ingest, server = await start_ingest()
    client = await RawClient.open(server.port)
    await client.publish()
    await server.close()
    await client.wait_closed()
    assert ingest.sink(GOOD_KEY).closed == ["server shutting down"]


async def test_slow_sink_pauses_reading_instead_of_buffering() -> None:
    gate = asyncio.Event()
    ingest, server = await start_ingest(gate=gate)
    try:
        client = await RawClient.open(server.port)
        await client.publish()
        client.set_chunk_size(65536)
        frame = b"\x27\x01" + bytes(256 * 1024)

        async def send_all() -> None:
            for timestamp in range(120):  # 30 MiB: more than the socket buffers hold
                client.media(MessageType.VIDEO, timestamp, frame)
                await client.writer.drain()

        sender = asyncio.create_task(send_all())
        await asyncio.sleep(1.0)
        assert not sender.done(), "the server kept reading while its sink was blocked"
        assert ingest.sink(GOOD_KEY).tags == []
        gate.set()
        await asyncio.wait_for(sender, 30)
        client.command("deleteStream", None, 1)
        await client.expect_command("onStatus")
        client.close()
        assert len(ingest.sink(GOOD_KEY).tags) == 120
    finally:
        await server.close()


# Bad input: each closes its connection with a log line; the server and other streams go on


async def send_raw(port: int, data: bytes) -> RawClient:
    client = await RawClient.open(port)
    client.writer.write(data)
    await client.writer.drain()
    return client


def chunk(type_id: int, payload: bytes, csid: int = 3, stream_id: int = 0) -> bytes:
    return encode_message(RtmpMessage(type_id, stream_id, 0, payload, csid), 128)


C1 = bytes(1536)


@pytest.mark.parametrize(
    ("data", "handshake", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False, "unsupported RTMP version 71"),
        (b"\x06" + C1, False, "unsupported RTMP version 6"),
        (b"\x03" + C1[:100], False, "handshake timed out"),
        (b"\x00" + os.urandom(3000), False, "unsupported RTMP version 0"),
        (b"\xc5" + bytes(20), True, "chunk type 3 on unknown chunk stream 5"),
        (
            bytes.fromhex("03 000000 ffffff 09 01000000"),
            True,
            "exceeds the limit",
        ),
        (
            bytes.fromhex("03 000000 008001 14 00000000"),  # 32769 bytes, before publish
            True,
            "message of 32769 bytes exceeds the limit of 32768",
        ),
        (
            chunk(MessageType.SET_CHUNK_SIZE, b"\x7f\xff\xff\xff") + bytes(1000),
            True,
            "chunk size 2147483647 exceeds the limit of 65536",
        ),
        (
            # Unfinished messages on two chunk streams: 20,000 bytes announced, 19,328 sent each.
            b"".join(
                chunk(MessageType.COMMAND_AMF0, bytes(20_000), csid)[: 12 + 128 + 150 * 129]
                for csid in (4, 5)
            ),
            True,
            "more than 32768 bytes buffered in unfinished messages",
        ),
        (
            # 15,360 bytes of a message at 128-byte chunks, then a chunk of 20,000 of 30,000:
            # each alone is under the cap, not the two together.
            chunk(MessageType.COMMAND_AMF0, bytes(20_000), 5)[: 12 + 128 + 119 * 129]
            + chunk(MessageType.SET_CHUNK_SIZE, (65536).to_bytes(4, "big"))
            + bytes.fromhex("04 000000 007530 14 00000000")
            + bytes(20_000),
            True,
            "bytes buffered in unfinished messages",
        ),
        (
            chunk(MessageType.USER_CONTROL, bytes.fromhex("0006 00000001"), 2) * 101,
            True,
            "more than 100 messages before publish",
        ),
        (chunk(MessageType.VIDEO, AVC_SEQUENCE_HEADER, 6, 1), True, "media sent before publish"),
        (chunk(MessageType.COMMAND_AMF0, b"\x02\x00\x05ab"), True, "protocol error: truncated"),
        (
            chunk(MessageType.COMMAND_AMF0, amf0.encode("publish", 1, None, "k")),
            True,
            "before connect",
        ),
    ],
    ids=[
        "http request",
        "wrong version",
        "truncated handshake",
        "random bytes",
        "type 3 on unknown chunk stream",
        "message over the size limit",
        "message over the cap before publish",
        "huge chunk size before publish",
        "unfinished messages over the cap before publish",
        "a chunk still arriving counts toward the cap",
        "too many messages before publish",
        "media before publish",
        "corrupt amf0",
        "publish before connect",
    ],
)
async def test_bad_input_closes_only_that_connection(
    logs: LogRecorder, data: bytes, handshake: bool, reason: str
) -> None:
    ingest, server = await start_ingest(
        limits=RtmpLimits(handshake_timeout=0.5, read_timeout=2.0, max_message_size=1 << 20)
    )
    try:
        bystander = await RawClient.open(server.port)
        await bystander.publish("other-key")

        bad = await RawClient.open(server.port)
        if handshake:
            await bad.handshake()
        bad.writer.write(data)
        await bad.writer.drain()
        await bad.wait_closed()

        await asyncio.sleep(0.05)
        # One warning line for the bad connection, never a traceback.
        assert [lvl for lvl, text in logs.closes() if reason in text] == ["warning"], logs
        assert not [event for event in logs.events if event[0] == "exception"]
        # The stream already live keeps flowing, and a new publisher is served.
        bystander.media(MessageType.VIDEO, 0, AVC_SEQUENCE_HEADER)
        bystander.close()
        await asyncio.wait_for(ingest.sink("other-key").closed_event.wait(), 5)
        assert len(ingest.sink("other-key").tags) == 1
        await publish_and_stop(server.port, ingest)
    finally:
        await server.close()


async def test_truncated_handshake_closed_by_the_client(logs: LogRecorder, ingest: Ingest) -> None:
    assert ingest.server is not None
    client = await send_raw(ingest.server.port, b"\x03" + C1[:700])
    client.close()
    await asyncio.sleep(0.2)
    assert ("warning", "handshake truncated") in logs.closes()
    await publish_and_stop(ingest.server.port, ingest)


async def test_silent_publisher_is_dropped(logs: LogRecorder) -> None:
    ingest, server = await start_ingest(limits=RtmpLimits(read_timeout=0.3))
    try:
        client = await RawClient.open(server.port)
        await client.publish()
        await client.wait_closed()
        assert ingest.sink(GOOD_KEY).closed == ["no data for 0.3 s"]
        assert ("info", "no data for 0.3 s") in logs.closes()
    finally:
        await server.close()


async def test_connection_limit() -> None:
    ingest, server = await start_ingest(limits=RtmpLimits(max_connections=1))
    try:
        first = await RawClient.open(server.port)
        await first.handshake()
        second = await RawClient.open(server.port)
        await second.wait_closed()
        first.close()
        await asyncio.sleep(0.1)
        await publish_and_stop(server.port, ingest)
    finally:
        await server.close()


async def test_connections_per_address_are_capped(logs: LogRecorder) -> None:
    ingest, server = await start_ingest(limits=RtmpLimits(max_connections_per_ip=2))
    try:
        first, second = await RawClient.open(server.port), await RawClient.open(server.port)
        await first.handshake()
        await second.handshake()
        third = await RawClient.open(server.port)
        third.writer.write(b"\x03" + C1)
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(third.reader.read(), 5) == b""  # no handshake reply
        assert [v["reason"] for _, e, v in logs.events if e == "rtmp_connection_refused"] == [
            "too many connections from this address"
        ]
        first.close()
        await asyncio.sleep(0.2)
        await publish_and_stop(server.port, ingest)  # a place is free again
        second.close()
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("peername", "address"),
    [
        (("203.0.113.7", 50000), "203.0.113.7"),
        (("2001:db8:1:2:aaaa::1", 50000, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:bbbb::9", 50000, 0, 0), "2001:db8:1:2::/64"),  # the same host's /64
        (("::ffff:203.0.113.7", 50000, 0, 0), "203.0.113.7"),
        ("stagecast.sock", None),  # a Unix socket: no address to count
    ],
)
def test_client_address_counts_an_ipv6_host_by_its_64(
    peername: object, address: str | None
) -> None:
    assert client_address(peername) == address


async def test_slow_handshake_is_cut(logs: LogRecorder) -> None:
    # Each byte arrives well within any idle timeout; the handshake as a whole does not.
    ingest, server = await start_ingest(limits=RtmpLimits(handshake_timeout=0.5))
    try:
        client = await RawClient.open(server.port)

        async def trickle() -> None:
            for byte in b"\x03" + C1:
                client.writer.write(bytes((byte,)))
                await client.writer.drain()
                await asyncio.sleep(0.05)

        sender = asyncio.create_task(trickle())
        await client.wait_closed()
        sender.cancel()
        assert ("warning", "handshake timed out") in logs.closes()
        await publish_and_stop(server.port, ingest)
    finally:
        await server.close()


async def test_idle_connection_before_publish_is_cut(logs: LogRecorder) -> None:
    ingest, server = await start_ingest(limits=RtmpLimits(idle_timeout=0.3, read_timeout=30))
    try:
        client = await RawClient.open(server.port)
        await client.connect()
        await client.wait_closed()
        assert ("info", "no data for 0.3 s") in logs.closes()
        await publish_and_stop(server.port, ingest)
    finally:
        await server.close()


async def test_a_publish_must_come_within_the_auth_timeout(logs: LogRecorder) -> None:
    ingest, server = await start_ingest(limits=RtmpLimits(idle_timeout=2.0, auth_timeout=0.5))
    try:
        client = await RawClient.open(server.port)
        await client.connect()

        async def keep_talking() -> None:
            for ping in itertools.count():
                client.send(user_control(UserControlEvent.PING_REQUEST, ping))
                await client.writer.drain()
                await asyncio.sleep(0.1)

        talker = asyncio.create_task(keep_talking())
        await client.wait_closed()
        talker.cancel()
        assert ("warning", "no publish within 0.5 s of connecting") in logs.closes()
        await publish_and_stop(server.port, ingest)
    finally:
        await server.close()


async def test_authorised_publisher_keeps_the_publisher_timeout() -> None:
    # Pre-publish timeouts far shorter than the publisher's: they no longer apply once live.
    limits = RtmpLimits(idle_timeout=0.2, auth_timeout=0.4, read_timeout=30)
    ingest, server = await start_ingest(limits=limits)
    try:
        client = await RawClient.open(server.port)
        await client.publish()
        await asyncio.sleep(1.0)
        client.media(MessageType.VIDEO, 0, AVC_SEQUENCE_HEADER)
        client.command("deleteStream", None, 1)
        await client.expect_command("onStatus")
        client.close()
        sink = ingest.sink(GOOD_KEY)
        await asyncio.wait_for(sink.closed_event.wait(), 5)
        assert sink.tags == [FlvTag(TagType.VIDEO, 0, AVC_SEQUENCE_HEADER)]
        assert sink.closed == ["unpublished"]
    finally:
        await server.close()


async def test_frames_may_follow_the_publish_command_at_once(ingest: Ingest) -> None:
    # Sent without waiting for NetStream.Publish.Start: the frame after publish is already
    # past the pre-publish cap, and the publish's limits apply to it.
    assert ingest.server is not None
    client = await RawClient.open(ingest.server.port)
    await client.connect()
    client.command("createStream", None)
    await client.expect_command("_result")
    keyframe = b"\x17\x01\x00\x00\x00" + os.urandom(200_000)
    client.command("publish", None, GOOD_KEY, "live", stream_id=1)
    client.media(MessageType.VIDEO, 0, keyframe)
    client.command("deleteStream", None, 1)
    await client.writer.drain()
    await client.wait_closed()
    sink = ingest.sink(GOOD_KEY)
    assert sink.tags == [FlvTag(TagType.VIDEO, 0, keyframe)]
    assert sink.closed == ["unpublished"]


async def test_message_over_the_publisher_limit_ends_the_publish(logs: LogRecorder) -> None:
    ingest, server = await start_ingest(limits=RtmpLimits(max_message_size=100_000))
    try:
        client = await RawClient.open(server.port)
        await client.publish()
        client.media(MessageType.VIDEO, 0, b"\x17\x01\x00\x00\x00" + bytes(99_000))
        client.media(MessageType.VIDEO, 33, b"\x17\x01\x00\x00\x00" + bytes(100_000))
        await client.writer.drain()
        await client.wait_closed()
        sink = ingest.sink(GOOD_KEY)
        await asyncio.wait_for(sink.closed_event.wait(), 5)
        assert len(sink.tags) == 1
        reason = "message of 100005 bytes exceeds the limit of 100000"
        assert [lvl for lvl, text in logs.closes() if reason in text] == ["warning"]
        assert not [event for event in logs.events if event[0] == "exception"]
    finally:
        await server.close()


# Real ffmpeg


FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


async def ffmpeg_publish(url: str, seconds: int) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        FFMPEG,
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440",
        "-t",
        str(seconds),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        "30",
        "-c:a",
        "aac",
        "-f",
        "flv",
        url,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        _, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stderr.decode(errors="replace")


async def ffmpeg_decode(path: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        FFMPEG,
        "-hide_banner",
        "-i",
        str(path),
        "-f",
        "null",
        "-",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode(errors="replace")
    return stderr.decode(errors="replace")


def assert_real_stream(sink: RecordingSink, seconds: int) -> None:
    [metadata] = sink.metadata
    assert (metadata["width"], metadata["height"]) == (320.0, 240.0)
    assert sink.tags[0].tag_type == TagType.SCRIPT
    video = sink.kinds(TagType.VIDEO)
    audio = sink.kinds(TagType.AUDIO)
    assert video[0].is_sequence_header
    assert video[0].video_codec == "h264"
    assert sum(tag.is_keyframe and not tag.is_sequence_header for tag in video) >= seconds
    assert len(video) >= 30 * seconds - 5
    assert audio[0].is_sequence_header
    assert audio[0].audio_codec == "aac"
    assert len(audio) > 35 * seconds
    assert sink.closed == ["unpublished"]


async def test_ffmpeg_publishes_readable_flv(ingest: Ingest, tmp_path: Path) -> None:
    assert ingest.server is not None
    code, stderr = await ffmpeg_publish(f"rtmp://127.0.0.1:{ingest.server.port}/live/{GOOD_KEY}", 3)
    assert code == 0, stderr
    sink = ingest.sink(GOOD_KEY)
    await asyncio.wait_for(sink.closed_event.wait(), 5)
    assert_real_stream(sink, 3)

    flv = tmp_path / "ingest.flv"
    flv.write_bytes(sink.flv)
    decoded = await ffmpeg_decode(flv)
    assert "Video: h264" in decoded
    assert "320x240" in decoded
    assert "Audio: aac" in decoded
    assert "time=00:00:02.9" in decoded or "time=00:00:03" in decoded


async def test_ffmpeg_with_a_wrong_key_fails(ingest: Ingest) -> None:
    assert ingest.server is not None
    code, stderr = await ffmpeg_publish(f"rtmp://127.0.0.1:{ingest.server.port}/live/nope", 1)
    assert code != 0
    assert "Unknown stream key." in stderr
    assert ingest.sinks == []


async def test_two_ffmpeg_publishers_at_once(ingest: Ingest) -> None:
    assert ingest.server is not None
    base = f"rtmp://127.0.0.1:{ingest.server.port}/live"
    results = await asyncio.gather(
        ffmpeg_publish(f"{base}/{GOOD_KEY}", 2), ffmpeg_publish(f"{base}/other-key", 2)
    )
    assert [code for code, _ in results] == [0, 0], results
    for key in (GOOD_KEY, "other-key"):
        sink = ingest.sink(key)
        await asyncio.wait_for(sink.closed_event.wait(), 5)
        assert_real_stream(sink, 2)


async def test_ffmpeg_publishes_while_hostile_connections_are_cut(
    logs: LogRecorder, ingest: Ingest
) -> None:
    assert ingest.server is not None
    url = f"rtmp://127.0.0.1:{ingest.server.port}/live/{GOOD_KEY}"
    publisher = asyncio.create_task(ffmpeg_publish(url, 3))
    await asyncio.sleep(1.0)
    hostile = [
        bytes.fromhex("04 000000 ffffff 09 01000000") + bytes(60_000),  # a 16 MiB frame
        chunk(MessageType.SET_CHUNK_SIZE, b"\x7f\xff\xff\xff") + bytes(60_000),
    ]
    for data in hostile:
        bad = await RawClient.open(ingest.server.port)
        await bad.handshake()
        bad.writer.write(data)
        await bad.writer.drain()
        await bad.wait_closed()
    code, stderr = await publisher
    assert code == 0, stderr
    sink = ingest.sink(GOOD_KEY)
    await asyncio.wait_for(sink.closed_event.wait(), 5)
    assert_real_stream(sink, 3)
    reasons = [text for lvl, text in logs.closes() if lvl == "warning"]
    assert len(reasons) == 2
    assert "exceeds the limit of 32768" in reasons[0]
    assert "chunk size 2147483647 exceeds the limit of 65536" in reasons[1]
    assert not [event for event in logs.events if event[0] == "exception"]


# The limits as `stagecast serve` sets them, from settings


def test_publisher_message_limit_follows_the_max_bitrate(tmp_path: Path) -> None:
    def limit(**overrides: object) -> int:
        return make_settings(
            tmp_path, "sqlite+aiosqlite://", **overrides
        ).resolved_rtmp_max_message_bytes

    assert limit() == 5_000_000  # two seconds at 20 Mb/s
    assert limit(media=MediaSettings(max_input_bitrate=50_000_000)) == 12_500_000
    assert limit(media=MediaSettings(max_input_bitrate=100_000_000)) == 0xFFFFFF
    assert limit(rtmp_max_message_bytes=1_000_000) == 1_000_000


async def test_settings_cap_connections_per_address(
    tmp_path: Path, committed_database_url: str
) -> None:
    settings = media_settings(tmp_path, committed_database_url, rtmp_max_connections_per_ip=2)
    async with serve_media(settings) as server:
        port = server.runtime.rtmp_port
        assert port is not None
        first, second = await RawClient.open(port), await RawClient.open(port)
        await first.handshake()
        await second.handshake()
        third = await RawClient.open(port)
        third.writer.write(b"\x03" + C1)
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(third.reader.read(), 10) == b""  # no handshake reply
        first.close()
        await asyncio.sleep(0.2)
        again = await RawClient.open(port)
        await again.handshake()
        for client in (second, again):
            client.close()


async def test_hostile_connections_are_cut_while_ffmpeg_goes_live(
    tmp_path: Path, committed_database_url: str
) -> None:
    settings = media_settings(
        tmp_path,
        committed_database_url,
        rtmp_handshake_timeout_seconds=1,
        rtmp_idle_timeout_seconds=1,
    )
    async with serve_media(settings) as server:
        port = server.runtime.rtmp_port
        assert port is not None
        publisher = await start_publisher(server.rtmp_url, seconds=6)
        stream = await server.live_stream()

        async def cut(data: bytes, *, handshake: bool = True, trickle: bool = False) -> None:
            """Send `data`; the server must close the connection within a generous bound."""
            client = await RawClient.open(port)
            if handshake:
                await client.handshake()
            sender = asyncio.create_task(send(client, data, trickle))
            await client.wait_closed(within=10)
            sender.cancel()

        async def send(client: RawClient, data: bytes, trickle: bool) -> None:
            for piece in (data[i : i + 1] for i in range(len(data))) if trickle else [data]:
                client.writer.write(piece)
                await client.writer.drain()
                if trickle:
                    await asyncio.sleep(0.1)

        await cut(bytes.fromhex("04 000000 ffffff 09 01000000") + bytes(60_000))  # 16 MiB frame
        await cut(chunk(MessageType.SET_CHUNK_SIZE, b"\x7f\xff\xff\xff") + bytes(60_000))
        await cut(bytes.fromhex("03 000000 009c40 14 00000000") + bytes(40_000))  # over 32 KiB
        await cut(b"\x03" + C1, handshake=False, trickle=True)  # a slow handshake
        await cut(b"")  # silent after the handshake

        code, report = await run_publisher(publisher)
        assert code == 0, report

        async def ended() -> bool:
            answer = await server.live.http.get(f"/api/v1/streams/{stream['id']}")
            return bool(answer.json()["status"] == "ended")

        await eventually(ended, within=40)
        playlist = await server.live.http.get(f"/hls/{stream['id']}/source/index.m3u8")
        assert playlist.status_code == 200
        assert playlist.text.count("#EXTINF:") >= 4
        assert "#EXT-X-ENDLIST" in playlist.text


async def run_publisher(process: asyncio.subprocess.Process) -> tuple[int, str]:
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stderr.decode(errors="replace")
