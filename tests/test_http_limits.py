"""HTTP connection limits (stagecast/http_limits.py) against a real uvicorn on a free port.

The server is the one `stagecast serve` runs (`uvicorn_config`), spoken to over raw sockets so
that a test can trickle headers, stop a body half-way, or come from another loopback address
(127.0.0.2: the default trusted proxy, 127.0.0.1, counts toward the total only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from stagecast.addresses import client_address
from stagecast.http_limits import trusted_networks
from tests.conftest import make_settings
from tests.realtime.conftest import LiveServer, serving

pytestmark = pytest.mark.usefixtures("committed_database_url")

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
OTHER_ADDRESS = "127.0.0.2"  # another client on loopback, not a trusted proxy
READ_LIMIT = 30.0  # how long a test waits for an answer before failing (never a bound)


@contextlib.asynccontextmanager
async def limited_server(
    tmp_path: Path, database_url: str, **overrides: Any
) -> AsyncIterator[LiveServer]:
    settings = make_settings(
        tmp_path,
        database_url,
        http_header_timeout_seconds=HEADER_TIMEOUT,
        http_body_timeout_seconds=BODY_TIMEOUT,
        **overrides,
    )
    async with serving(settings) as live:
        yield live


def _port(live: LiveServer) -> int:
    return int(live.url.rsplit(":", 1)[1])


async def _connect(
    live: LiveServer, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", _port(live), local_addr=(source, 0))


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Everything the server sends until it closes the connection, as status, headers, body."""
    raw = await asyncio.wait_for(reader.read(), READ_LIMIT)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers, body


def _problem(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem: dict[str, Any] = json.loads(body)
    return problem


async def _cut_reasons(live: LiveServer) -> dict[str, float]:
    metrics = (await live.http.get("/metrics")).text
    prefix = 'stagecast_http_connections_cut_total{reason="'
    found: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith(prefix):
            reason, value = line.removeprefix(prefix).split('"} ')
            found[reason] = float(value)
    return found


async def test_slowloris_is_cut_while_other_requests_answer(
    tmp_path: Path, committed_database_url: str
) -> None:
    async with limited_server(tmp_path, committed_database_url) as live:
        reader, writer = await _connect(live)
        request = b"GET /healthz HTTP/1.1\r\nHost: stagecast\r\nX-Slow: " + b"z" * 60
        answer = asyncio.create_task(_read_answer(reader))
        sent = 0
        # One byte a second: the whole request would take over a minute.
        for byte in request:
            if answer.done():
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            sent += 1
            if sent == 2:  # the server keeps answering everyone else meanwhile
                assert (await live.http.get("/healthz")).status_code == 200
            await asyncio.sleep(1)
        status, headers, body = await answer
        writer.close()

        assert sent < len(request), "the trickled request was never cut"
        assert status == 408
        problem = _problem(headers, body)
        assert problem["code"] == "REQUEST_TIMEOUT"
        assert problem["status"] == 408
        assert (await live.http.get("/healthz")).status_code == 200
        assert (await _cut_reasons(live))["header_timeout"] >= 1


async def _answered_once(live: LiveServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that has had one request answered, kept open."""
    reader, writer = await _connect(live)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: stagecast\r\n\r\n")
    await writer.drain()
    first = await asyncio.wait_for(reader.readuntil(b'{"status":"ok"}'), READ_LIMIT)
    assert first.startswith(b"HTTP/1.1 200 OK")
    return reader, writer


async def test_a_reused_connection_gets_a_deadline_for_each_request(
    tmp_path: Path, committed_database_url: str
) -> None:
    async with limited_server(tmp_path, committed_database_url) as live:
        reader, writer = await _answered_once(live)

        # The next request on the same connection starts, then its headers stall.
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: st")
        await writer.drain()
        status, headers, body = await _read_answer(reader)
        writer.close()
        assert status == 408
        assert _problem(headers, body)["code"] == "REQUEST_TIMEOUT"


async def test_blank_lines_between_requests_do_not_hold_a_connection(
    tmp_path: Path, committed_database_url: str
) -> None:
    async with limited_server(tmp_path, committed_database_url) as live:
        reader, writer = await _answered_once(live)
        # The parser skips empty lines before a request, and each one used to restart
        # uvicorn's keep-alive timer.
        closed = asyncio.create_task(reader.read())
        sent = 0
        while not closed.done() and sent < 60:
            with contextlib.suppress(ConnectionError):
                writer.write(b"\r\n")
                await writer.drain()
            sent += 1
            await asyncio.sleep(0.5)
        assert await asyncio.wait_for(closed, READ_LIMIT) == b""
        writer.close()
        assert sent < 60, "the blank lines held the connection"


async def test_a_connection_that_sends_nothing_is_closed(
    tmp_path: Path, committed_database_url: str
) -> None:
    async with limited_server(tmp_path, committed_database_url) as live:
        reader, writer = await _connect(live)
        # Not a byte of a request: closed without an answer, like an idle keep-alive.
        assert await asyncio.wait_for(reader.read(), READ_LIMIT) == b""
        writer.close()
        assert (await live.http.get("/healthz")).status_code == 200
        assert (await _cut_reasons(live))["idle_timeout"] >= 1


JSON = {"Content-Type": "application/json"}


def _registration(prefix: str) -> tuple[str, bytes]:
    """A new username and the JSON body that registers it."""
    username = f"{prefix}_{uuid.uuid4().hex[:8]}"
    body = {"username": username, "email": f"{username}@example.com", "password": "Correct-7x"}
    return username, json.dumps(body).encode()


def _register_head(body: bytes) -> bytes:
    """The request line and headers of `POST /api/v1/auth/register` with `body`."""
    return (
        b"POST /api/v1/auth/register HTTP/1.1\r\nHost: stagecast\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )


async def test_a_body_that_stops_arriving_gets_408_and_changes_nothing(
    tmp_path: Path, committed_database_url: str
) -> None:
    async with limited_server(tmp_path, committed_database_url) as live:
        _, body = _registration("stalled")
        reader, writer = await _connect(live)
        writer.write(_register_head(body) + body[: len(body) // 2])
        await writer.drain()
        # The second half never comes.
        status, headers, answer = await _read_answer(reader)
        writer.close()

        assert status == 408
        problem = _problem(headers, answer)
        assert problem["code"] == "REQUEST_TIMEOUT"
        assert problem["instance"] == "/api/v1/auth/register"
        # Nothing was registered: the same account can still be made, whole.
        again = await live.http.post("/api/v1/auth/register", content=body, headers=JSON)
        assert again.status_code == 201, again.text
        assert (await _cut_reasons(live))["body_timeout"] >= 1


async def test_a_slow_but_steady_body_is_taken(tmp_path: Path, committed_database_url: str) -> None:
    async with limited_server(tmp_path, committed_database_url) as live:
        username, body = _registration("steady")
        reader, writer = await _connect(live)
        writer.write(_register_head(body))
        # Four pieces, each within the body timeout of the last, longer than it in all.
        pieces = [body[i : i + len(body) // 4 + 1] for i in range(0, len(body), len(body) // 4 + 1)]
        for piece in pieces:
            await asyncio.sleep(BODY_TIMEOUT / 2)
            writer.write(piece)
            await writer.drain()
        status, _, answer = await _read_answer(reader)
        writer.close()
        assert status == 201, answer
        assert json.loads(answer)["user"]["username"] == username


async def test_headers_over_the_limit_get_431(tmp_path: Path, committed_database_url: str) -> None:
    async with limited_server(tmp_path, committed_database_url, http_max_header_bytes=2048) as live:
        reader, writer = await _connect(live)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: stagecast\r\nX-Big: " + b"b" * 4096)
        await writer.drain()
        status, headers, body = await _read_answer(reader)
        writer.close()
        assert status == 431
        assert _problem(headers, body)["code"] == "HEADERS_TOO_LARGE"

        fits = await live.http.get("/healthz", headers={"X-Fits": "f" * 1024})
        assert fits.status_code == 200


async def test_connections_past_the_per_address_cap_are_refused(
    tmp_path: Path, committed_database_url: str
) -> None:
    async with limited_server(
        tmp_path, committed_database_url, http_max_connections_per_ip=3
    ) as live:
        # A viewer's websocket holds one of the address's three places ...
        connector = aiohttp.TCPConnector(local_addr=(OTHER_ADDRESS, 0))
        async with aiohttp.ClientSession(connector=connector) as session:
            viewer = socketio.AsyncClient(reconnection=False, http_session=session)
            await viewer.connect(live.url, transports=["websocket"], wait_timeout=10)
            # ... two idle connections the others.
            held = [await _connect(live, OTHER_ADDRESS) for _ in range(2)]

            reader, writer = await _connect(live, OTHER_ADDRESS)
            status, headers, body = await _read_answer(reader)
            writer.close()
            assert status == 429
            problem = _problem(headers, body)
            assert problem["code"] == "TOO_MANY_CONNECTIONS"
            assert headers["retry-after"] == "1"
            # Other clients are not affected.
            assert (await live.http.get("/healthz")).status_code == 200

            # The websocket ending frees its place.
            await viewer.disconnect()
            await _wait_until_admitted(live, OTHER_ADDRESS)
            for _, held_writer in held:
                held_writer.close()
        assert (await _cut_reasons(live))["per_ip_connection_limit"] >= 1


async def _wait_until_admitted(live: LiveServer, source: str) -> None:
    """A request from `source` answers 200 once a place is free (the close takes a moment)."""
    for _ in range(50):
        reader, writer = await _connect(live, source)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: stagecast\r\nConnection: close\r\n\r\n")
        await writer.drain()
        status, _, _ = await _read_answer(reader)
        writer.close()
        if status == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{source} was never admitted again")


async def test_connections_past_the_total_cap_are_refused(
    tmp_path: Path, committed_database_url: str
) -> None:
    async with limited_server(tmp_path, committed_database_url, http_max_connections=3) as live:
        held = [await _connect(live) for _ in range(3)]
        reader, writer = await _connect(live, OTHER_ADDRESS)
        status, headers, body = await _read_answer(reader)
        writer.close()
        assert status == 503
        assert _problem(headers, body)["code"] == "TOO_MANY_CONNECTIONS"

        held[0][1].close()
        await _wait_until_admitted(live, "127.0.0.1")
        for _, held_writer in held[1:]:
            held_writer.close()


def test_the_per_address_count_groups_an_ipv6_host() -> None:
    assert client_address(("203.0.113.7", 5000)) == "203.0.113.7"
    assert client_address(("::ffff:203.0.113.7", 5000, 0, 0)) == "203.0.113.7"
    assert client_address(("2001:db8:1:2:aaaa::1", 5000, 0, 0)) == "2001:db8:1:2::/64"
    assert client_address(("2001:db8:1:2:bbbb::9", 5000, 0, 0)) == "2001:db8:1:2::/64"
    assert client_address("/run/stagecast.sock") is None


def test_trusted_proxies_are_read_like_uvicorn() -> None:
    networks = trusted_networks("127.0.0.1, 10.0.0.0/8,/run/proxy.sock, ::1")
    assert [str(n) for n in networks] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    assert {str(n) for n in trusted_networks("*")} == {"0.0.0.0/0", "::/0"}
