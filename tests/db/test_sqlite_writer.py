"""SQLite's writes take turns on one connection per process: a write that waits longer than
SQLite's busy timeout (10 s) still succeeds, and one that waits past the app's own limit gets a
503 it can retry, not a 500 "database is locked"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from stagecast.runtime import Runtime
from tests.conftest import TEST_DATABASE_URL, make_settings
from tests.factories import PASSWORD, unique_name
from tests.realtime.conftest import LiveServer, serving

pytestmark = pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="SQLite's writer (CI runs both)")


async def hold_the_writer(runtime: Runtime, seconds: float, held: asyncio.Event) -> None:
    """A write transaction that stays open (as a slow writer on a loaded machine would)."""
    async with runtime.db.session() as session, session.begin():
        await session.execute(text("UPDATE users SET bio = bio WHERE 0"))
        held.set()
        await asyncio.sleep(seconds)


async def register(live: LiveServer) -> tuple[int, dict[str, object]]:
    name = unique_name("queued")
    answer = await live.http.post(
        "/api/v1/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
        timeout=60,
    )
    return answer.status_code, answer.json()


@pytest.mark.timeout(90)
async def test_a_write_waits_its_turn_past_the_busy_timeout(
    tmp_path: Path, committed_database_url: str
) -> None:
    async with serving(make_settings(tmp_path, committed_database_url)) as live:
        runtime: Runtime = live.app.state.runtime
        held = asyncio.Event()
        holder = asyncio.create_task(hold_the_writer(runtime, 11, held))
        await held.wait()
        # Reads never wait for the writer.
        assert (await live.http.get("/api/v1/browse")).status_code == 200
        status, body = await register(live)
        await holder
        assert status == 201, body


@pytest.mark.timeout(60)
async def test_a_write_that_waits_too_long_is_told_to_retry(
    tmp_path: Path, committed_database_url: str
) -> None:
    settings = make_settings(tmp_path, committed_database_url, database_write_wait_seconds=0.5)
    async with serving(settings) as live:
        runtime: Runtime = live.app.state.runtime
        held = asyncio.Event()
        holder = asyncio.create_task(hold_the_writer(runtime, 2, held))
        await held.wait()
        status, body = await register(live)
        await holder
        assert status == 503
        assert body["code"] == "DATABASE_BUSY"
        status, body = await register(live)  # its turn came: the retry goes through
        assert status == 201, body
