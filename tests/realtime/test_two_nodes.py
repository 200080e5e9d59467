"""Two `stagecast serve` processes sharing Redis: chat and viewer counts span both."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from tests.conftest import TEST_REDIS_URL, fresh_database_url
from tests.realtime.conftest import Listener, free_port

pytestmark = pytest.mark.skipif(
    not TEST_REDIS_URL, reason="needs STAGECAST_TEST_REDIS_URL (CI sets it)"
)


def _start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "stagecast", "serve", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready: {log.read_text()}")


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGECAST_")}
    env.update(
        STAGECAST_DATA_DIR=str(tmp_path / "shared"),  # same keys and secret on both nodes
        STAGECAST_REDIS_URL=TEST_REDIS_URL or "",
        STAGECAST_KEY_PREFIX=f"stagecast-nodes:{tmp_path.name}",
        STAGECAST_PASSWORD_TIME_COST="1",
        STAGECAST_RTMP_PORT="0",  # any free port: tests run side by side
        STAGECAST_PASSWORD_MEMORY_KIB="8192",
        STAGECAST_PASSWORD_PARALLELISM="1",
    )
    if os.environ.get("STAGECAST_TEST_DATABASE_URL"):
        env["STAGECAST_DATABASE_URL"] = fresh_database_url(tmp_path, "nodes")
    subprocess.run(
        [sys.executable, "-m", "stagecast", "db", "upgrade"],
        env=env,
        check=True,
        capture_output=True,
    )
    ports = [free_port(), free_port()]
    logs = [tmp_path / "node1.log", tmp_path / "node2.log"]
    processes = [_start(env, port, log) for port, log in zip(ports, logs, strict=True)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, process, log in zip(urls, processes, logs, strict=True):
            _wait_ready(url, process, log)
        yield urls[0], urls[1]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


async def _signed_in(url: str, name: str) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post(
            "/api/v1/auth/register",
            json={"username": name, "email": f"{name}@example.com", "password": "Correct-Horse-7"},
        )
        assert response.status_code == 201, response.text
        return response.json()["access_token"], response.json()["user"]["id"]


async def test_chat_and_viewer_counts_cross_nodes(two_nodes: tuple[str, str]) -> None:
    first, second = two_nodes
    owner_token, _ = await _signed_in(first, "node_owner")
    async with httpx.AsyncClient(base_url=first) as http:
        channel = (
            await http.post(
                "/api/v1/channels",
                json={"slug": "two-nodes"},
                headers={"Authorization": f"Bearer {owner_token}"},
            )
        ).json()
    viewer_token, _ = await _signed_in(second, "node_viewer")

    clients: list[socketio.AsyncClient] = []
    try:
        listeners = []
        for url, token in ((first, owner_token), (second, viewer_token)):
            client = socketio.AsyncClient(reconnection=False)
            listener = Listener(client)
            await client.connect(url, auth={"token": token}, transports=["websocket"])
            clients.append(client)
            joined = await listener.call("stream:join", {"channelId": channel["id"]})
            assert joined["ok"], joined
            listeners.append(listener)
        on_first, on_second = listeners
        # Sockets of other dialects on the second node: each node translates for its own.
        dialects = []
        for join in ({"channelId": channel["id"]}, {"streamKey": "two-nodes", "userId": "u"}):
            client = socketio.AsyncClient(reconnection=False)
            listener = Listener(client)
            await client.connect(second, transports=["websocket"])
            clients.append(client)
            assert (await listener.call("join-stream", join))["ok"]
            dialects.append(listener)
        seed000, seed004 = dialects

        sent = await on_first.call("chat:send", {"message": "from node one"})
        assert sent["ok"], sent
        received = await on_second.wait_for("chat:message", within=10)
        assert received["payload"]["body"] == "from node one"
        assert (await seed000.wait_for("new-message", within=10))["payload"]["body"] == (
            "from node one"
        )
        assert (await seed004.wait_for("chat:message", within=10))["type"] == "chat:message"
        counted = await seed004.wait_for(
            "viewer-joined", lambda e: e["viewerCount"] == 3, within=10
        )
        assert counted == {"streamKey": "two-nodes", "viewerCount": 3}  # one anonymous browser
        assert "chat:message" not in [name for name, _ in seed000.events]

        # Signed-in viewers on each node and one anonymous browser: both report the three.
        for listener in (on_first, on_second):
            update = await listener.wait_for(
                "viewers:updated", lambda e: e["payload"]["viewer_count"] == 3, within=10
            )
            assert update["payload"]["channel_id"] == channel["id"]
    finally:
        for client in clients:
            await client.disconnect()


async def test_signing_out_on_one_node_disconnects_the_sockets_on_the_other(
    two_nodes: tuple[str, str],
) -> None:
    first, second = two_nodes
    token, _ = await _signed_in(first, "node_leaver")
    client = socketio.AsyncClient(reconnection=False)
    gone = asyncio.Event()
    client.on("disconnect", lambda *_: gone.set())
    notices: list[Any] = []
    client.on("auth:revoked", notices.append)
    await client.connect(second, auth={"token": token}, transports=["websocket"])
    try:
        async with httpx.AsyncClient(base_url=first) as http:
            answer = await http.post(
                "/api/v1/sessions/logout-all", headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 200, answer.text
        await asyncio.wait_for(gone.wait(), 5)
        # The notice is sent just before the disconnect; the disconnect is what must happen.
        assert all(n["payload"]["reason"] == "logout_all" for n in notices)
    finally:
        await client.disconnect()
