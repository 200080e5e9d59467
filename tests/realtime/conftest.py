"""A real server on a free port for Socket.IO clients, on its own committed database."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import socketio
import uvicorn
from fastapi import FastAPI

from stagecast.app import create_app
from stagecast.cli import uvicorn_config
from stagecast.config import Settings
from tests.conftest import make_settings
from tests.factories import Account, register


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    app: FastAPI
    url: str
    http: httpx.AsyncClient
    sockets_http: aiohttp.ClientSession
    clients: list[socketio.AsyncClient] = field(default_factory=list)

    async def account(self, **overrides: Any) -> Account:
        return await register(self.http, **overrides)

    async def connect(
        self,
        account: Account | None = None,
        *,
        query: str = "",
        headers: dict[str, str] | None = None,
        **auth: Any,
    ) -> Listener:
        """A Socket.IO client, signed in as `account` (or anonymous), recording every event.

        `auth` adds handshake fields (`dialect=`); `query` goes on the URL (`dialect=seed002`).
        """
        # One shared HTTP session, closed by the fixture, also for refused handshakes.
        client = socketio.AsyncClient(reconnection=False, http_session=self.sockets_http)
        listener = Listener(client)
        token = auth.pop("token", account.access_token if account else None)
        handshake = {**({"token": token} if token else {}), **auth}
        await client.connect(
            f"{self.url}?{query}" if query else self.url,
            auth=handshake or None,
            headers=headers or {},
            transports=["websocket"],
            wait_timeout=10,
        )
        self.clients.append(client)
        return listener


async def seed004_viewer(
    live: LiveServer, stream_key: str, *, browser: str, user_id: str = "user123"
) -> tuple[Listener, dict[str, Any]]:
    """A seed 004 viewer as its client joins: anonymous, `join-stream` with no ack, waiting for
    `stream-joined`. `browser` is its User-Agent (anonymous viewers count once per browser)."""
    viewer = await live.connect(headers={"User-Agent": browser})
    await viewer.client.emit("join-stream", {"streamKey": stream_key, "userId": user_id})
    return viewer, await viewer.wait_for("stream-joined")


class Listener:
    """Records the events a client receives, and waits for them."""

    def __init__(self, client: socketio.AsyncClient) -> None:
        self.client = client
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()

        @client.on("*")
        async def record(event: str, data: Any = None) -> None:
            self.events.append((event, data))
            self._changed.set()

    async def call(self, event: str, data: Any = None) -> dict[str, Any]:
        answer: dict[str, Any] = await self.client.call(event, data, timeout=10)
        return answer

    async def wait_for(
        self, event: str, where: Callable[[Any], bool] = lambda _: True, within: float = 5
    ) -> Any:
        """The first payload of `event` matching `where`, waiting up to `within` seconds."""

        async def found() -> Any:
            while True:
                for name, data in self.events:
                    if name == event and where(data):
                        return data
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(found(), within)

    def received(self, event: str) -> list[Any]:
        return [data for name, data in self.events if name == event]


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[LiveServer]:
    """The app of `settings` served by uvicorn on a free port, with clients for it."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=port))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    async with (
        httpx.AsyncClient(base_url=url, timeout=10) as http,
        aiohttp.ClientSession() as sockets_http,
    ):
        live_server = LiveServer(app=app, url=url, http=http, sockets_http=sockets_http)
        try:
            yield live_server
        finally:
            for client in live_server.clients:
                await client.disconnect()
            server.should_exit = True
            await task


@pytest.fixture
async def live(tmp_path: Path, committed_database_url: str) -> AsyncIterator[LiveServer]:
    async with serving(make_settings(tmp_path, committed_database_url)) as live_server:
        yield live_server
