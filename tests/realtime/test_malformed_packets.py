"""Garbage on /socket.io from anyone: one warning line a packet, no traceback, and the
server goes on serving real clients."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from tests.conftest import logged
from tests.realtime.conftest import LiveServer

GARBAGE = ["garbage", "4", "42[", '42["x"', "9zz", "\x00\x01", "40/nope,", "2probe" * 1000]


async def test_malformed_packets_cost_one_warning_each(
    live: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = live.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    with caplog.at_level(logging.WARNING):
        async with aiohttp.ClientSession() as http:
            for packet in GARBAGE:
                async with http.ws_connect(url) as ws:
                    await ws.receive(timeout=5)  # Engine.IO's open packet
                    await ws.send_str("40")
                    await ws.receive(timeout=5)  # Socket.IO's connect
                    await ws.send_str(packet)
                    await ws.send_bytes(b"\xff\xfe")
                    await asyncio.sleep(0.1)
            polled = await http.post(
                live.url + "/socket.io/?EIO=4&transport=polling&sid=nope", data="garbage"
            )
            assert polled.status == 400
        await asyncio.sleep(0.3)
    problems = logged(caplog, "socketio_problem")
    assert 1 <= len(problems) <= 2 * len(GARBAGE) + 1
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.msg in problems)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if r.exc_info]

    # Real clients are served as before.
    viewer = await live.connect()
    assert viewer.client.connected
    assert (await live.http.get("/healthz")).status_code == 200


async def test_a_bug_in_a_handler_answers_a_500_problem_and_logs_once(
    live: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    realtime = live.app.state.runtime.realtime

    @realtime.on("test:boom")
    async def boom(_sid: str, _user: object, _payload: object) -> dict[str, object]:
        raise RuntimeError("a bug")

    socket = await live.connect()
    with caplog.at_level(logging.WARNING):
        answer = await socket.call("test:boom", {})
    assert answer["ok"] is False
    assert answer["error"]["status"] == 500
    assert answer["error"]["code"] == "INTERNAL_ERROR"
    failures = logged(caplog, "socket_handler_failed")
    assert len(failures) == 1
    assert failures[0]["socket_event"] == "test:boom"
    # The socket goes on working.
    assert (await socket.call("stream:leave", {}))["ok"] is False
