"""Two `stagecast serve` processes sharing Redis: chat and viewer counts span both."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from tests.conftest import TEST_REDIS_URL, fresh_database_url
from tests.e2e.serve import ServeProcess, serve_environment
from tests.realtime.conftest import Listener

pytestmark = pytest.mark.skipif(
    not TEST_REDIS_URL, reason="needs STAGECAST_TEST_REDIS_URL (CI sets it)"
)


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[str, str]]:
    database_url = None
    if os.environ.get("STAGECAST_TEST_DATABASE_URL"):
        database_url = fresh_database_url(tmp_path, "nodes")
    # One data dir: the same keys and secret on both nodes.
    env = serve_environment(
        tmp_path / "shared",
        database_url,
        key_prefix=f"stagecast-nodes:{tmp_path.name}",
        STAGECAST_RATE_LIMIT_AUTH="1000/minute",  # the poll test signs up 30 voters
    )
    nodes = [ServeProcess(env, tmp_path / f"node{n}.log") for n in (1, 2)]
    try:
        for node in nodes:
            node.start()
        yield nodes[0].base, nodes[1].base
    finally:
        for node in nodes:
            node.stop()


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


async def test_votes_on_both_nodes_reach_the_room_once_a_window(
    two_nodes: tuple[str, str],
) -> None:
    """Each node takes votes; the room hears one `poll:voted` a window across both (the Redis
    window lock), the tallies count every vote, and one node ends the poll."""
    first, second = two_nodes
    owner_token, _ = await _signed_in(first, "poll_owner")
    owner = {"Authorization": f"Bearer {owner_token}"}
    async with httpx.AsyncClient(base_url=first) as http:
        channel = await http.post("/api/v1/channels", json={"slug": "two-polls"}, headers=owner)
        poll = await http.post(
            "/api/v1/polls",
            json={"channel_id": channel.json()["id"], "question": "Q", "choices": ["a", "b"]},
            headers=owner,
        )
        assert poll.status_code == 201, poll.text
    poll_id = poll.json()["id"]
    watchers = []
    clients: list[socketio.AsyncClient] = []
    try:
        for url in (first, second):
            client = socketio.AsyncClient(reconnection=False)
            listener = Listener(client)
            await client.connect(url, transports=["websocket"])
            clients.append(client)
            assert (await listener.call("stream:join", {"channelId": channel.json()["id"]}))["ok"]
            watchers.append(listener)
        voters = [
            await _signed_in(url, f"poll_voter{i}") for i, url in enumerate([first, second] * 15)
        ]
        loop = asyncio.get_running_loop()
        began = loop.time()

        async def vote(index: int) -> None:
            url = (first, second)[index % 2]
            async with httpx.AsyncClient(base_url=url) as http:
                answer = await http.post(
                    f"/api/v1/polls/{poll_id}/vote",
                    json={"choice": index % 2},
                    headers={"Authorization": f"Bearer {voters[index][0]}"},
                )
                assert answer.status_code == 200, answer.text

        await asyncio.gather(*(vote(i) for i in range(len(voters))))
        for listener in watchers:
            last = await listener.wait_for(
                "poll:voted", lambda e: e["payload"]["total_votes"] == 30, within=10
            )
            assert [c["votes"] for c in last["payload"]["choices"]] == [15, 15]
        windows = (loop.time() - began) / 0.25
        for listener in watchers:
            # One tally a window for the room, not one per node (nor per vote).
            assert len(listener.received("poll:voted")) <= windows + 2
        async with httpx.AsyncClient(base_url=second) as http:
            ended = await http.post(f"/api/v1/polls/{poll_id}/end", headers=owner)
            assert ended.status_code == 200, ended.text
        for listener in watchers:
            final = await listener.wait_for("poll:ended", within=10)
            assert final["payload"]["total_votes"] == 30
    finally:
        for client in clients:
            await client.disconnect()


async def _cache_hits(http: httpx.AsyncClient) -> float:
    text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith('stagecast_auth_principal_cache_lookups_total{result="hit"}'):
            return float(line.split()[-1])
    raise AssertionError("no principal cache metric")


async def _within_a_second(check: Callable[[], Awaitable[bool]]) -> bool:
    """The issue's bound: a change on one node holds on every node within a second."""
    deadline = asyncio.get_running_loop().time() + 1.0
    while True:
        if await check():
            return True
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)


async def test_a_caller_remembered_on_one_node_changes_and_ends_with_the_other(
    two_nodes: tuple[str, str],
) -> None:
    first, second = two_nodes
    token, _ = await _signed_in(first, "node_remembered")
    headers = {"Authorization": f"Bearer {token}"}
    me = "/api/v1/auth/me"
    async with (
        httpx.AsyncClient(base_url=first) as on_first,
        httpx.AsyncClient(base_url=second) as on_second,
    ):
        assert (await on_second.get(me, headers=headers)).status_code == 200
        hits = await _cache_hits(on_second)
        assert (await on_second.get(me, headers=headers)).status_code == 200
        assert await _cache_hits(on_second) == hits + 1  # the second node remembers the caller

        renamed = await on_first.patch(
            "/api/v1/users/me", json={"display_name": "Renamed Elsewhere"}, headers=headers
        )
        assert renamed.status_code == 200, renamed.text

        async def sees_the_name() -> bool:
            answer = await on_second.get(me, headers=headers)
            return bool(answer.json()["display_name"] == "Renamed Elsewhere")

        assert await _within_a_second(sees_the_name)

        signed_out = await on_first.post("/api/v1/auth/logout", headers=headers)
        assert signed_out.status_code == 204

        async def refuses() -> bool:
            return (await on_second.get(me, headers=headers)).status_code == 401

        assert await _within_a_second(refuses)
