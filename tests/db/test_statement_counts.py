"""The statements the hot paths send are counted, so that they cannot creep back.

Counted on a real server with its own pool, without the BEGINs (only SQLite sends those as
statements): the numbers are the same on SQLite and PostgreSQL. See docs/development.md,
"Hot-path rules"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stagecast.runtime import Runtime
from tests.db.conftest import counting_settings
from tests.factories import Account, go_live, make_channel
from tests.money.test_wallet import buy
from tests.realtime.conftest import LiveServer, serving
from tests.statements import Statement, StatementLog, queries

# What each costs now; lower is welcome (then lower the number), higher fails.
AUTH_ME = 0  # a session this node vouched for lately (accounts/principals.py)
AUTH_ME_UNCACHED = 1  # the token's session and user in one statement
WALLET_BALANCE = 1  # the three balances in one statement; the caller is remembered
# stream and channel (the caller is remembered), the locks, then the writes: the ledger
# transaction, the balances, the entries, the contribution and the stream's total, in one
# statement on PostgreSQL.
TIP = {"sqlite": 7, "postgresql": 3}
CHAT_SEND = 5  # author and channel, appointed moderator, bans, the insert, subscriber
BROWSE = 3  # streams, their channels, their tags


def _compiled_once(sent: list[Statement]) -> None:
    """Each statement built so that SQLAlchemy compiles it once and reuses it: one without a
    cache key is compiled on every request (the ledger entries' multi-VALUES insert was: a
    fifth of a tip's CPU)."""
    assert [s.sql for s in sent if not s.cached] == []


def _shown(sent: list[Statement]) -> str:
    return "\n".join(f"[{s.mode}] {s.sql[:160]}" for s in sent)


async def _live_stream(live: LiveServer) -> tuple[Account, dict[str, Any], str]:
    creator = await live.account()
    channel = await make_channel(live.http, creator)
    return creator, channel, await go_live(live.app, channel["slug"])


async def test_auth_me(live: LiveServer, statements: StatementLog) -> None:
    viewer = await live.account()
    await live.http.get("/api/v1/auth/me", headers=viewer.headers)  # warm: first-use caches
    with statements.capture() as sent:
        response = await live.http.get("/api/v1/auth/me", headers=viewer.headers)
    assert response.status_code == 200, response.text
    assert len(queries(sent)) == AUTH_ME, _shown(sent)
    _compiled_once(sent)


async def test_auth_me_with_the_principal_cache_off(
    tmp_path: Path, committed_database_url: str
) -> None:
    settings = counting_settings(tmp_path, committed_database_url, auth_principal_cache_seconds=0)
    async with serving(settings) as live:
        runtime: Runtime = live.app.state.runtime
        statements = StatementLog(runtime.db.engines).install()
        viewer = await live.account()
        await live.http.get("/api/v1/auth/me", headers=viewer.headers)
        with statements.capture() as sent:
            response = await live.http.get("/api/v1/auth/me", headers=viewer.headers)
        assert response.status_code == 200, response.text
        assert len(queries(sent)) == AUTH_ME_UNCACHED, _shown(sent)
        _compiled_once(sent)
        assert len(runtime.principals) == 0


async def test_wallet_balance(live: LiveServer, statements: StatementLog) -> None:
    viewer = await live.account()
    await buy(live.http, viewer, 100)
    await live.http.get("/api/v1/wallet/balance", headers=viewer.headers)
    with statements.capture() as sent:
        response = await live.http.get("/api/v1/wallet/balance", headers=viewer.headers)
    assert response.status_code == 200, response.text
    assert response.json()["token_balance"] == 100
    assert len(queries(sent)) == WALLET_BALANCE, _shown(sent)
    _compiled_once(sent)
    assert all(s.mode != "write" for s in sent), _shown(sent)


async def test_tip(live: LiveServer, statements: StatementLog) -> None:
    _, _, stream_id = await _live_stream(live)
    viewer = await live.account()
    await buy(live.http, viewer, 100)
    tip = f"/api/v1/streams/{stream_id}/tips"
    # The first tip makes the creator's earnings account; the next one finds it and the
    # process remembers it exists (money/ledger.py).
    for _ in range(2):
        first = await live.http.post(tip, json={"tokens": 5}, headers=viewer.headers)
        assert first.status_code == 201, first.text
    with statements.capture() as sent:
        response = await live.http.post(tip, json={"tokens": 7}, headers=viewer.headers)
    assert response.status_code == 201, response.text
    runtime: Runtime = live.app.state.runtime
    assert len(queries(sent)) == TIP[runtime.db.dialect], _shown(sent)
    _compiled_once(sent)


async def test_chat_send(live: LiveServer, statements: StatementLog) -> None:
    _, _, stream_id = await _live_stream(live)
    viewer = await live.account()
    client = await live.connect(viewer)
    await client.call("stream:join", {"streamId": stream_id})
    assert (await client.call("chat:send", {"message": "warm"}))["ok"]
    with statements.capture() as sent:
        answer = await client.call("chat:send", {"message": "hello"})
    assert answer["ok"], answer
    assert len(queries(sent)) == CHAT_SEND, _shown(sent)
    _compiled_once(sent)


async def test_browse_uncached(live: LiveServer, statements: StatementLog) -> None:
    # The test settings turn the directory cache off (directory_cache_seconds=0).
    for _ in range(3):
        await _live_stream(live)
    await live.http.get("/api/v1/browse")
    with statements.capture() as sent:
        response = await live.http.get("/api/v1/browse")
    assert response.status_code == 200, response.text
    assert response.json()["data"]
    assert len(queries(sent)) == BROWSE, _shown(sent)
    _compiled_once(sent)
    assert all(s.mode != "write" for s in sent), _shown(sent)
