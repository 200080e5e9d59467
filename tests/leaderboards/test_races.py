"""Leaderboards' sorted sets on two nodes that build and write at the same time (real Redis, a
committed database): nothing is counted twice or lost, whatever the interleaving."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.app import create_app
from stagecast.leaderboards import service as leaderboards
from stagecast.leaderboards.service import Board, Period, period_start
from stagecast.leaderboards.sorted_sets import SortedSets
from stagecast.runtime import Runtime
from tests.conftest import TEST_REDIS_URL, make_settings
from tests.factories import Account, make_channel, register
from tests.leaderboards.test_leaderboards import API, follow, ranks, send_chat

pytestmark = pytest.mark.skipif(
    not TEST_REDIS_URL, reason="needs STAGECAST_TEST_REDIS_URL (CI sets it)"
)


@contextlib.asynccontextmanager
async def two_nodes(
    tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[tuple[FastAPI, httpx.AsyncClient], tuple[FastAPI, httpx.AsyncClient]]]:
    """Two apps on one committed database and one Redis (the same key prefix), each with its
    own engine, event bus and leaderboard feed: two nodes (one data directory: the same keys
    sign and check their tokens)."""
    prefix = f"stagecast-test:{uuid.uuid4().hex[:12]}"
    apps = [create_app(make_settings(tmp_path, database_url, key_prefix=prefix)) for _ in "ab"]
    async with (
        LifespanManager(apps[0]),
        LifespanManager(apps[1]),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=apps[0]), base_url="http://a") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=apps[1]), base_url="http://b") as b,
    ):
        yield (apps[0], a), (apps[1], b)


class GatedSets(SortedSets):
    """A node's store whose builds stop before and after their database read, so that a test
    can commit events on another node at those moments."""

    def __init__(self, runtime: Runtime) -> None:
        assert runtime.redis is not None
        super().__init__(runtime.redis, runtime.settings.key_prefix)
        self.reading, self.read = asyncio.Event(), asyncio.Event()
        self.may_read, self.may_install = asyncio.Event(), asyncio.Event()

    async def _read(
        self, session: AsyncSession, board: Board, since: datetime | None
    ) -> list[tuple[uuid.UUID, int]]:
        self.reading.set()
        await self.may_read.wait()
        ranked = await super()._read(session, board, since)
        self.read.set()
        await self.may_install.wait()
        return ranked


async def sql_ranks(app: FastAPI, name: str, period: Period) -> list[tuple[int, str, int]]:
    runtime: Runtime = app.state.runtime
    async with runtime.db.read_session() as session, session.begin():
        resolved = await leaderboards.resolve_board(session, name)
        since = period_start(period, datetime.now(UTC))
        return [
            (r, str(u), s)
            for r, u, s in await leaderboards.sql_top(session, resolved, since, limit=100)
        ]


async def redis_board(client: httpx.AsyncClient, name: str, period: Period) -> dict[str, Any]:
    answer = await client.get(f"{API}/{name}", params={"period": period.value, "limit": 100})
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    assert data["backend"] == "redis", data
    return data


async def test_events_on_one_node_during_a_build_on_the_other(
    tmp_path: Path, committed_database_url: str
) -> None:
    """Node A builds the chat board's set; node B commits messages before A's read, between
    its read and its install, and reads the board while A still builds. The set then counts
    each message once (before, a set counted only the events fed after its install: the
    messages committed between A's read and its install were lost)."""
    async with two_nodes(tmp_path, committed_database_url) as ((app_a, a), (app_b, b)):
        owner = await register(a)
        channel = await make_channel(a, owner)
        name = f"channel:{channel['id']}:chat"
        fans = [await register(a) for _ in range(4)]
        await send_chat(app_a, fans[0], channel["slug"], "early")
        await send_chat(app_a, fans[0], channel["slug"], "early")

        gated = GatedSets(app_a.state.runtime)
        now = datetime.now(UTC)
        async with app_a.state.runtime.db.read_session() as session:
            async with session.begin():
                resolved = await leaderboards.resolve_board(session, name)
            building = asyncio.create_task(gated.ensure(session, resolved, Period.ALL, now))
            await asyncio.wait_for(gated.reading.wait(), 10)
            # Committed after the build's ticket, before its read: read by it and marked.
            await send_chat(app_b, fans[1], channel["slug"], "during")
            await app_b.state.runtime.leaderboards.drain()
            gated.may_read.set()
            await asyncio.wait_for(gated.read.wait(), 10)
            # Committed after its read, before its install: only the marks can count them.
            for _ in range(3):
                await send_chat(app_b, fans[2], channel["slug"], "after the read")
            await send_chat(app_b, fans[1], channel["slug"], "after the read")
            await app_b.state.runtime.leaderboards.drain()
            # Node B reads while A builds: it waits for A's set rather than building its own.
            waiting = asyncio.create_task(redis_board(b, name, Period.ALL))
            await asyncio.sleep(0.2)
            assert not waiting.done()
            gated.may_install.set()
            assert await asyncio.wait_for(building, 10) is not None
            on_b = await asyncio.wait_for(waiting, 15)

        expected = await sql_ranks(app_a, name, Period.ALL)
        assert [(u, s) for _, u, s in expected] == [
            (fans[2].id, 3),
            *sorted([(fans[0].id, 2), (fans[1].id, 2)]),
        ]
        assert ranks(on_b) == expected
        for period in Period:
            for client in (a, b):
                assert ranks(await redis_board(client, name, period)) == await sql_ranks(
                    app_a, name, period
                )
        # A message committed after all this, on either node, is counted once.
        await send_chat(app_a, fans[3], channel["slug"], "late")
        await send_chat(app_b, fans[3], channel["slug"], "late")
        for client in (a, b):
            assert ranks(await redis_board(client, name, Period.ALL)) == await sql_ranks(
                app_a, name, Period.ALL
            )


async def test_two_nodes_writing_and_rebuilding_at_once(
    tmp_path: Path, committed_database_url: str
) -> None:
    """Chat messages, follows and unfollows committed through both nodes while both keep
    throwing their sets away (as when they expire) and building them again on reads; at the end
    both nodes rank every period as the database does."""
    async with two_nodes(tmp_path, committed_database_url) as ((app_a, a), (app_b, b)):
        owners = [await register(a) for _ in range(3)]
        channels = [await make_channel(a, owner) for owner in owners]
        chat_name = f"channel:{channels[0]['id']}:chat"
        fans = [await register(a) for _ in range(6)]
        nodes = [(app_a, a), (app_b, b)]
        rounds = 6

        async def chatter(n: int, fan: Account) -> None:
            app, _ = nodes[n % 2]
            for r in range(rounds):
                for _ in range((n + r) % 3 + 1):
                    await send_chat(app, fan, channels[0]["slug"], f"{n}/{r}")

        async def follower(n: int, fan: Account) -> None:
            _, client = nodes[(n + 1) % 2]
            for r in range(rounds):
                slug = channels[(n + r) % 3]["slug"]
                await follow(client, fan, slug, on=(n + r) % 4 != 3)

        async def rebuilder(n: int) -> None:
            app, client = nodes[n]
            runtime: Runtime = app.state.runtime
            assert runtime.redis is not None
            sets = runtime.leaderboards.sorted_sets() if runtime.leaderboards else None
            assert sets is not None
            for _ in range(rounds * 2):
                now = datetime.now(UTC)
                for board_name in (chat_name, "creators:followers"):
                    for period in Period:
                        key = sets.key(board_name, period, now)
                        await runtime.redis.delete(key, f"{key}:built", f"{key}:floor")
                    await redis_board(client, board_name, Period.ALL)
                    await redis_board(client, board_name, Period.DAY)
                await asyncio.sleep(0.01)

        await asyncio.gather(
            *(chatter(n, fan) for n, fan in enumerate(fans)),
            *(follower(n, fan) for n, fan in enumerate(fans)),
            rebuilder(0),
            rebuilder(1),
        )
        for app, _ in nodes:
            assert app.state.runtime.leaderboards is not None
            await app.state.runtime.leaderboards.drain()

        ours = {owner.id for owner in owners}
        for period in Period:
            expected_chat = await sql_ranks(app_a, chat_name, period)
            assert len(expected_chat) == len(fans)
            # The followers board is the whole platform's (other tests' creators too): compare
            # our creators' scores in their order.
            everyone = await sql_ranks(app_a, "creators:followers", period)
            expected_followers = [(u, s) for _, u, s in everyone if u in ours]
            assert expected_followers
            for _, client in nodes:
                assert ranks(await redis_board(client, chat_name, period)) == expected_chat
                got = await redis_board(client, "creators:followers", period)
                assert [(u, s) for _, u, s in ranks(got) if u in ours] == expected_followers
