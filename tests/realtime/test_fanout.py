"""Room fan-out: one frame for every websocket, the ordinary path for the rest, slow readers cut."""

from __future__ import annotations

import asyncio
import socket

import pytest
import socketio
from socketio import packet as socketio_packet
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from stagecast.realtime import fanout
from stagecast.realtime.fanout import FanoutManager, websocket_frame
from stagecast.runtime import Runtime
from tests.factories import go_live, make_channel
from tests.realtime.conftest import Listener, LiveServer


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_frames_parse_as_websocket_messages(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    client = ClientProtocol(parse_uri("ws://stagecast.test/"), state=State.OPEN)
    client.receive_data(websocket_frame(payload, opcode=fanout.OPCODE_BINARY))
    client.receive_data(websocket_frame(b'42["x"]'))
    events = client.events_received()
    assert [(e.opcode, e.fin) for e in events] == [(Opcode.BINARY, True), (Opcode.TEXT, True)]
    assert events[0].data == payload
    assert events[1].data == b'42["x"]'


def _manager(live: LiveServer) -> FanoutManager:
    runtime: Runtime = live.app.state.runtime
    assert runtime.realtime is not None
    return runtime.realtime.manager


async def _joined_room(live: LiveServer) -> tuple[str, str]:
    owner = await live.account()
    channel = await make_channel(live.http, owner)
    stream_id = await go_live(live.app, channel["slug"])
    return channel["id"], stream_id


async def test_websockets_get_the_shared_frame_and_polling_the_ordinary_way(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel_id, stream_id = await _joined_room(live)
    talker_account = await live.account()
    talker = await live.connect(talker_account)
    watcher = await live.connect()
    poller_client = socketio.AsyncClient(reconnection=False, http_session=live.sockets_http)
    poller = Listener(poller_client)
    await poller_client.connect(live.url, transports=["polling"], wait_timeout=10)
    live.clients.append(poller_client)
    for client in (talker, watcher, poller):
        assert (await client.call("stream:join", {"streamId": stream_id}))["ok"]

    manager = _manager(live)
    before = manager.frames_written
    sent = await talker.call("chat:send", {"channelId": channel_id, "message": "to everyone"})
    assert sent["ok"], sent
    for client in (talker, watcher, poller):
        event = await client.wait_for("chat:message")
        assert event["payload"]["body"] == "to everyone"
    # The two websocket clients took the shared frame, the long-polling one could not; the
    # talker's ack was a frame of its own (FramingServer), the poller's went the ordinary way.
    assert manager.frames_written - before == 3
    # Acks: written as a frame to a websocket, handed to Engine.IO for a long-poller.
    acks: list[tuple[str, bool]] = []
    write_one = manager.write_one

    def recording(eio_sid: str, encoded: str) -> bool:
        written = write_one(eio_sid, encoded)
        if encoded.startswith(str(socketio_packet.ACK)):
            acks.append((encoded, written))
        return written

    monkeypatch.setattr(manager, "write_one", recording)
    assert (await watcher.call("stream:leave", {"streamId": stream_id}))["ok"]
    assert (await poller.call("stream:leave", {"streamId": stream_id}))["ok"]
    assert [written for _, written in acks] == [True, False]


async def test_a_long_polling_client_that_leaves_gets_its_waiting_poll_answered(
    live: LiveServer,
) -> None:
    client = socketio.AsyncClient(reconnection=False, http_session=live.sockets_http)
    await client.connect(live.url, transports=["polling"], wait_timeout=10)
    eio_sid = client.eio.sid
    engine = _manager(live).server.eio
    assert eio_sid in engine.sockets
    # python-socketio's client waits on disconnect for its pending GET. Unanswered, that GET
    # is held until its 30 s timeout (the server's ping interval and timeout are longer):
    # answered with a CLOSE packet, as the JS engine.io server does, it returns at once.
    await asyncio.wait_for(client.disconnect(), timeout=10)
    assert client.eio.state == "disconnected"
    for _ in range(100):
        if eio_sid not in engine.sockets:
            break
        await asyncio.sleep(0.05)
    assert eio_sid not in engine.sockets


async def test_a_viewer_that_stops_reading_is_dropped_and_the_room_goes_on(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel_id, stream_id = await _joined_room(live)
    reader = await live.connect()
    assert (await reader.call("stream:join", {"streamId": stream_id}))["ok"]
    stalled, stalled_sid = await _stalled_viewer(live, stream_id)

    monkeypatch.setattr(fanout, "MAX_BUFFERED_BYTES", 256 * 1024)
    manager = _manager(live)
    room = f"channel:{channel_id}"
    blob = "x" * 64 * 1024
    dropped = False
    for n in range(400):  # ~25 MB: more than the kernel buffers for a reader that stopped
        await manager.emit("load:test", {"n": n, "blob": blob}, namespace="/", room=room)
        await asyncio.sleep(0)
        if manager.transports.get(stalled_sid) is None:
            dropped = True
            break
    assert dropped, "the stalled viewer was never cut off"
    stalled.close()

    # Everyone else keeps getting the room's events.
    await manager.emit("load:test", {"n": "last"}, namespace="/", room=room)
    await reader.wait_for("load:test", lambda data: data["n"] == "last")


async def _stalled_viewer(live: LiveServer, stream_id: str) -> tuple[socket.socket, str]:
    """A raw websocket client that joins the room, then never reads again."""
    loop = asyncio.get_running_loop()
    host, port = live.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    handshake = (
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, handshake.encode())
    received = b""

    async def until(marker: bytes) -> None:
        nonlocal received
        while marker not in received:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 10)
            assert chunk, "server closed the connection"
            received += chunk

    await until(b"\r\n\r\n")
    await until(b'"sid"')  # Engine.IO open packet
    eio_sid = received.split(b'"sid":"', 1)[1].split(b'"', 1)[0].decode()
    await loop.sock_sendall(sock, _masked_text("40"))
    await until(b"40{")
    await loop.sock_sendall(sock, _masked_text(f'421["stream:join",{{"streamId":"{stream_id}"}}]'))
    await until(b"431[")
    return sock, eio_sid


def _masked_text(text: str) -> bytes:
    """A client-to-server text frame (clients must mask; a zero mask keeps it readable)."""
    data = text.encode()
    assert len(data) < 126
    return bytes([0x81, 0x80 | len(data)]) + b"\0\0\0\0" + data
