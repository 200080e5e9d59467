"""Flags and maintenance mode are one for the whole deployment: a change on one node reaches
the others through the cluster bus (Redis), whatever they had cached."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from stagecast.admin import flags, maintenance
from stagecast.admin.switches import TOPIC
from stagecast.app import create_app
from stagecast.config import AdminSettings
from stagecast.db.engine import Database
from stagecast.runtime import Runtime
from tests.conftest import TEST_REDIS_URL, make_settings
from tests.factories import make_admin


@pytest.mark.skipif(not TEST_REDIS_URL, reason="nodes share changes through Redis")
async def test_a_change_reaches_every_node(tmp_path: Path, database: Database) -> None:
    prefix = f"stagecast-test:{uuid.uuid4().hex[:12]}"
    # Caches long enough that only the bus can explain a node seeing the change.
    cached = AdminSettings(background=False, switches_cache_seconds=300)
    first = create_app(
        make_settings(tmp_path / "a", "unused", key_prefix=prefix, admin=cached), database=database
    )
    second = create_app(
        make_settings(tmp_path / "b", "unused", key_prefix=prefix, admin=cached), database=database
    )
    async with LifespanManager(first), LifespanManager(second):
        other: Runtime = second.state.runtime
        assert await flags.enabled(other, "tips")  # read, and now cached for 300 s
        assert not (await maintenance.current(other)).enabled
        heard = asyncio.Event()

        async def hear(_payload: dict[str, object]) -> None:
            heard.set()

        assert other.cluster is not None
        other.cluster.on(TOPIC, hear)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=first), base_url="http://testserver"
        ) as client:
            admin = await make_admin(client, first)
            answer = await client.put(
                "/api/v1/admin/feature-flags/tips", json={"enabled": False}, headers=admin.headers
            )
            assert answer.status_code == 200
            answer = await client.put(
                "/api/v1/admin/maintenance", json={"enabled": True}, headers=admin.headers
            )
            assert answer.status_code == 200
        async with asyncio.timeout(10):
            await heard.wait()
        await asyncio.sleep(0)  # the node's own handler, registered first, has run too
        assert not await flags.enabled(other, "tips")
        assert (await maintenance.current(other)).enabled
