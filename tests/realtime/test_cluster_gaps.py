"""A node that loses its Redis subscription may have missed commands: it says so (on_gap), and
the principal cache forgets everything it held (accounts/principals.py)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from stagecast.accounts.models import User
from stagecast.accounts.principals import PrincipalCache
from stagecast.db.base import utcnow
from stagecast.realtime.cluster import ClusterBus
from tests.conftest import TEST_REDIS_URL

pytestmark = pytest.mark.skipif(
    not TEST_REDIS_URL, reason="needs STAGECAST_TEST_REDIS_URL (CI sets it)"
)


async def test_a_lost_subscription_clears_the_principal_cache() -> None:
    assert TEST_REDIS_URL
    channel = f"stagecast-test:gaps:{uuid.uuid4().hex}"
    bus = ClusterBus(redis_url=TEST_REDIS_URL, channel=channel)
    cache = PrincipalCache(ttl_seconds=60)
    gaps = asyncio.Event()
    cache.follow_cluster(bus)
    bus.on_gap.append(gaps.set)
    await bus.start()
    admin = Redis.from_url(TEST_REDIS_URL)
    try:
        cache.remember(
            User(id=uuid.uuid4(), username="gap", role="viewer", status="active"),
            session_id=uuid.uuid4(),
            session_expires_at=utcnow() + timedelta(days=1),
            token_expires_at=utcnow() + timedelta(minutes=5),
            read_at_epoch=cache.epoch,
        )
        assert len(cache) == 1
        # Cut this bus's subscriber connection, as a Redis restart or a network fault would.
        ours = [c for c in await admin.client_list(_type="pubsub") if c["name"] == bus.client_name]
        assert ours
        for client in ours:
            await admin.client_kill_filter(_id=client["id"])
        await asyncio.wait_for(gaps.wait(), 10)
        assert len(cache) == 0
        # And it subscribes again: commands flow as before.
        heard = asyncio.Event()

        async def hear(_payload: dict[str, object]) -> None:
            heard.set()

        bus.on("probe", hear)

        async def probe_until_heard() -> None:
            while not heard.is_set():
                await bus.send("probe", {})
                await asyncio.sleep(0.2)

        await asyncio.wait_for(probe_until_heard(), 10)
    finally:
        await admin.aclose()
        await bus.stop()
