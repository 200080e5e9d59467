"""PostgreSQL connections killed under a running server (a restart, a failover): the next
requests succeed, retried on a fresh connection (there is no pre-ping)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from stagecast.runtime import Runtime
from tests.conftest import TEST_DATABASE_URL
from tests.factories import make_channel
from tests.money.test_wallet import buy
from tests.realtime.conftest import LiveServer

pytestmark = pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="kills PostgreSQL backends (STAGECAST_TEST_DATABASE_URL)"
)


async def _terminate_app_connections(live: LiveServer) -> int:
    runtime: Runtime = live.app.state.runtime
    url = make_url(runtime.settings.resolved_database_url)
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password,
        database=url.database,
    )  # fmt: skip
    try:
        killed = await admin.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()) AS gone",
            url.database,
        )
    finally:
        await admin.close()
    return int(killed)


async def test_requests_after_the_backends_were_killed_succeed(live: LiveServer) -> None:
    viewer = await live.account()
    await buy(live.http, viewer, 100)
    # Several pooled connections, all to be killed.
    for _ in range(3):
        assert (await live.http.get("/api/v1/wallet/balance", headers=viewer.headers)).is_success
    assert await _terminate_app_connections(live) >= 1

    read = await live.http.get("/api/v1/wallet/balance", headers=viewer.headers)
    assert read.status_code == 200, read.text
    assert read.json()["token_balance"] == 100

    assert await _terminate_app_connections(live) >= 1
    creator = await live.account()  # a write (registration) right after the kill
    channel = await make_channel(live.http, creator)
    assert channel["slug"]

    assert await _terminate_app_connections(live) >= 1
    me = await live.http.get("/api/v1/auth/me", headers=viewer.headers)
    assert me.status_code == 200, me.text
