"""Tournaments: the bracket and its byes, results and their advance, fees into the prize pool,
prizes out of it, refunds, and every bad input changing nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from stagecast.money.models import LedgerTransaction
from stagecast.runtime import Runtime
from stagecast.tournaments import brackets
from tests.conftest import make_settings
from tests.factories import Account, go_live, make_channel, register
from tests.leaderboards.test_leaderboards import fund
from tests.money.books import check_books
from tests.realtime.conftest import serving

API = "/api/v1/tournaments"


def later(hours: int = 1) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


async def create(client: httpx.AsyncClient, organiser: Account, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "Friday Cup",
        "category": "chess",
        "format": "single_elimination",
        "max_participants": 8,
        "starts_at": later(),
        **fields,
    }
    answer = await client.post(API, json=body, headers=organiser.headers)
    assert answer.status_code == 201, answer.text
    data: dict[str, Any] = answer.json()
    return data


async def join(
    client: httpx.AsyncClient, tournament: dict[str, Any], who: Account
) -> httpx.Response:
    return await client.post(f"{API}/{tournament['id']}/join", headers=who.headers)


async def balance(client: httpx.AsyncClient, who: Account) -> int:
    data = (await client.get("/api/v1/wallet/balance", headers=who.headers)).json()
    tokens: int = data["token_balance"]
    return tokens


async def books(app: FastAPI) -> None:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        await check_books(session)


async def movements(app: FastAPI) -> int:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        return int(await session.scalar(select(func.count()).select_from(LedgerTransaction)) or 0)


def ready(tournament: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for r in tournament["rounds"] for m in r["matches"] if m["status"] == "ready"]


async def play_out(
    client: httpx.AsyncClient, tournament: dict[str, Any], organiser: Account, *, lower_seed: bool
) -> dict[str, Any]:
    """The organiser reports every match until none is left: the better seed wins."""
    for _ in range(64):  # more than any bracket here has matches: a stuck one fails the test
        if not ready(tournament):
            return tournament
        match = ready(tournament)[0]
        players = sorted((match["player1"], match["player2"]), key=lambda p: p["seed"])
        winner = players[0] if lower_seed else players[1]
        answer = await client.post(
            f"{API}/{tournament['id']}/matches/{match['id']}/result",
            json={"winner_id": winner["user_id"], "score": "2-0"},
            headers=organiser.headers,
        )
        assert answer.status_code == 200, answer.text
        tournament = answer.json()
    raise AssertionError("the matches never ran out")


# --- the bracket's shape ----------------------------------------------------------------------


def test_seeds_meet_as_a_bracket_should() -> None:
    assert brackets.seed_order(8) == [1, 8, 4, 5, 2, 7, 3, 6]
    assert brackets.seed_order(2) == [1, 2]
    pairs = brackets.first_round(["a", "b", "c", "d", "e"])  # 5 of 8: three byes
    assert pairs == [("a", None), ("d", "e"), ("b", None), ("c", None)]
    assert brackets.bracket_size(5) == 8
    assert brackets.bracket_size(2) == 2
    assert brackets.rounds_of(8) == 3


def test_round_robin_pairs_everyone_once_and_nobody_twice_a_round() -> None:
    for count in (2, 3, 4, 7):
        players = list(range(count))
        rounds = brackets.round_robin(players)
        pairs = [frozenset(p) for r in rounds for p in r]
        assert sorted(map(sorted, pairs)) == sorted(
            [a, b] for a in players for b in players if a < b
        )
        for r in rounds:
            seen = [p for pair in r for p in pair]
            assert len(seen) == len(set(seen))


def test_prize_shares_give_what_is_left_to_first_place() -> None:
    assert brackets.prize_shares(500, [70, 30], 5) == [350, 150]
    assert brackets.prize_shares(101, [50, 30, 20], 3) == [51, 30, 20]
    assert brackets.prize_shares(300, [50, 30, 20], 2) == [210, 90]  # third place untaken
    assert sum(brackets.prize_shares(997, [33, 33, 34], 3)) == 997


# --- single elimination, end to end ------------------------------------------------------------


async def test_five_players_byes_results_prizes(client: httpx.AsyncClient, app: FastAPI) -> None:
    organiser = await register(client)
    players = [await register(client) for _ in range(5)]
    tournament = await create(client, organiser, entry_fee_tokens=100, prize_split=[70, 30])
    for p in players:
        await fund(client, p, 1000)
        answer = await join(client, tournament, p)
        assert answer.status_code == 200, answer.text
        assert await balance(client, p) == 900
    assert answer.json()["prize_pool_tokens"] == 500
    assert answer.json()["participant_count"] == 5

    started = await client.post(f"{API}/{tournament['id']}/start", headers=organiser.headers)
    assert started.status_code == 200, started.text
    bracket = started.json()
    assert bracket["status"] == "running"
    assert [r["name"] for r in bracket["rounds"]] == ["Quarter-finals", "Semi-finals", "Final"]
    first = bracket["rounds"][0]["matches"]
    assert sorted(m["status"] for m in first) == ["bye", "bye", "bye", "ready"]
    seeds = sorted(p["seed"] for p in bracket["standings"])
    assert seeds == [1, 2, 3, 4, 5]
    byes = {m["winner_id"] for m in first if m["status"] == "bye"}
    by_seed = {s["seed"]: s["user_id"] for s in bracket["standings"]}
    assert byes == {by_seed[1], by_seed[2], by_seed[3]}
    # Seeds 2 and 3 had byes into the same semi-final: it is ready before any result.
    semis = bracket["rounds"][1]["matches"]
    assert [m["status"] for m in semis] == ["pending", "ready"]

    done = await play_out(client, bracket, organiser, lower_seed=True)
    assert done["status"] == "completed"
    assert done["winner_id"] == by_seed[1]
    assert done["prize_pool_tokens"] == 0
    standings = {s["user_id"]: s for s in done["standings"]}
    assert standings[by_seed[1]]["placement"] == 1
    assert standings[by_seed[2]]["placement"] == 2
    assert (standings[by_seed[1]]["prize_tokens"], standings[by_seed[2]]["prize_tokens"]) == (
        350,
        150,
    )
    assert done["standings"][0]["user_id"] == by_seed[1]
    wallets = {p.id: await balance(client, p) for p in players}
    assert wallets[by_seed[1]] == 900 + 350
    assert wallets[by_seed[2]] == 900 + 150
    assert sorted(wallets.values()).count(900) == 3
    await books(app)

    # The standings board counts matches won (byes do not count).
    board = await client.get(f"/api/v1/leaderboards/tournament:{tournament['id']}:standings")
    assert board.status_code == 200, board.text
    top = board.json()["data"]
    assert (top[0]["user_id"], top[0]["score"]) == (by_seed[1], 2)

    # A finished match takes no other result.
    final = done["rounds"][-1]["matches"][0]
    again = await client.post(
        f"{API}/{tournament['id']}/matches/{final['id']}/result",
        json={"winner_id": final["player2"]["user_id"]},
        headers=organiser.headers,
    )
    assert (again.status_code, again.json()["code"]) == (409, "MATCH_FINISHED")
    after = (await client.get(f"{API}/{tournament['id']}")).json()
    assert after == {**done}


async def test_players_agreeing_decide_and_disagreeing_leave_it_to_the_organiser(
    client: httpx.AsyncClient,
) -> None:
    organiser = await register(client)
    a, b, c, d = [await register(client) for _ in range(4)]
    tournament = await create(client, organiser, max_participants=4)
    for p in (a, b, c, d):
        assert (await join(client, tournament, p)).status_code == 200
    bracket = (
        await client.post(f"{API}/{tournament['id']}/start", headers=organiser.headers)
    ).json()
    accounts = {x.id: x for x in (a, b, c, d)}
    first, second = bracket["rounds"][0]["matches"]
    url = f"{API}/{tournament['id']}/matches/{first['id']}/result"
    p1, p2 = accounts[first["player1"]["user_id"]], accounts[first["player2"]["user_id"]]

    one = await client.post(url, json={"winner_id": p1.id}, headers=p1.headers)
    assert one.status_code == 200, one.text
    match = one.json()["rounds"][0]["matches"][0]
    assert (match["status"], match["reported_by"]) == ("ready", [p1.id])
    both = await client.post(url, json={"winner_id": p1.id, "score": "3-1"}, headers=p2.headers)
    match = both.json()["rounds"][0]["matches"][0]
    assert (match["status"], match["winner_id"], match["score"]) == ("completed", p1.id, "3-1")
    assert both.json()["rounds"][1]["matches"][0]["player1"]["user_id"] == p1.id

    url2 = f"{API}/{tournament['id']}/matches/{second['id']}/result"
    q1, q2 = accounts[second["player1"]["user_id"]], accounts[second["player2"]["user_id"]]
    await client.post(url2, json={"winner_id": q1.id}, headers=q1.headers)
    disputed = await client.post(url2, json={"winner_id": q2.id}, headers=q2.headers)
    assert disputed.json()["rounds"][0]["matches"][1]["status"] == "disputed"
    # Someone outside the match cannot settle it; the organiser can.
    stranger = await client.post(url2, json={"winner_id": q2.id}, headers=p1.headers)
    assert (stranger.status_code, stranger.json()["code"]) == (403, "PERMISSION_DENIED")
    settled = await client.post(url2, json={"winner_id": q2.id}, headers=organiser.headers)
    final = settled.json()["rounds"][1]["matches"][0]
    assert (final["status"], final["player1"]["user_id"], final["player2"]["user_id"]) == (
        "ready",
        p1.id,
        q2.id,
    )


async def test_cancelling_refunds_every_fee(client: httpx.AsyncClient, app: FastAPI) -> None:
    organiser = await register(client)
    players = [await register(client) for _ in range(3)]
    tournament = await create(client, organiser, entry_fee_tokens=250)
    for p in players:
        await fund(client, p, 1000)
        await join(client, tournament, p)
    # One leaves before the start and gets the fee back at once.
    left = await client.post(f"{API}/{tournament['id']}/leave", headers=players[2].headers)
    assert left.status_code == 200, left.text
    assert (left.json()["participant_count"], left.json()["prize_pool_tokens"]) == (2, 500)
    assert await balance(client, players[2]) == 1000
    await client.post(f"{API}/{tournament['id']}/start", headers=organiser.headers)
    cancelled = await client.post(f"{API}/{tournament['id']}/cancel", headers=organiser.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["prize_pool_tokens"]) == ("cancelled", 0)
    assert [await balance(client, p) for p in players] == [1000, 1000, 1000]
    history = await client.get("/api/v1/wallet/transactions", headers=players[0].headers)
    kinds = [e["transaction_type"] for e in history.json()["data"]]
    assert kinds[:2] == ["tournament_refund", "tournament_fee"]
    await books(app)
    again = await client.post(f"{API}/{tournament['id']}/cancel", headers=organiser.headers)
    assert again.status_code == 409


async def test_a_join_with_an_idempotency_key_pays_once(client: httpx.AsyncClient) -> None:
    organiser, player = await register(client), await register(client)
    await fund(client, player, 1000)
    tournament = await create(client, organiser, entry_fee_tokens=300)
    headers = {**player.headers, "Idempotency-Key": "join-friday-cup"}
    first = await client.post(f"{API}/{tournament['id']}/join", headers=headers)
    second = await client.post(f"{API}/{tournament['id']}/join", headers=headers)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert await balance(client, player) == 700
    assert second.json()["participant_count"] == 1


async def test_seeding_by_a_leaderboard(client: httpx.AsyncClient, app: FastAPI) -> None:
    creator = await register(client)
    channel = await make_channel(client, creator)
    stream_id = await go_live(app, channel["slug"])
    players = [await register(client) for _ in range(4)]
    for n, p in enumerate(players):
        await fund(client, p, 1000)
        if n:  # the first player gives nothing: seeded last
            await client.post(
                f"/api/v1/streams/{stream_id}/tips", json={"tokens": 100 * n}, headers=p.headers
            )
    organiser = await register(client)
    tournament = await create(client, organiser, max_participants=4)
    for p in players:
        await join(client, tournament, p)
    board = f"channel:{channel['id']}:supporters"
    started = await client.post(
        f"{API}/{tournament['id']}/start",
        json={"seeding": "leaderboard", "leaderboard": board},
        headers=organiser.headers,
    )
    assert started.status_code == 200, started.text
    seeds = {s["user_id"]: s["seed"] for s in started.json()["standings"]}
    assert [seeds[p.id] for p in players] == [4, 3, 2, 1]
    assert started.json()["seeding"] == f"{board}:all"


async def test_round_robin_places_by_wins(client: httpx.AsyncClient, app: FastAPI) -> None:
    organiser = await register(client)
    players = [await register(client) for _ in range(3)]
    tournament = await create(
        client, organiser, format="round_robin", max_participants=3, entry_fee_tokens=10,
        prize_split=[60, 40],
    )  # fmt: skip
    for p in players:
        await fund(client, p, 1000)
        await join(client, tournament, p)
    bracket = (
        await client.post(f"{API}/{tournament['id']}/start", headers=organiser.headers)
    ).json()
    assert sum(len(r["matches"]) for r in bracket["rounds"]) == 3
    done = await play_out(client, bracket, organiser, lower_seed=True)
    assert done["status"] == "completed"
    placed = [(s["seed"], s["wins"], s["placement"], s["prize_tokens"]) for s in done["standings"]]
    assert placed == [(1, 2, 1, 18), (2, 1, 2, 12), (3, 0, 3, 0)]
    await books(app)


async def test_a_match_names_the_channel_streaming_it(client: httpx.AsyncClient) -> None:
    organiser = await register(client)
    channel = await make_channel(client, organiser)
    a, b = await register(client), await register(client)
    tournament = await create(client, organiser, max_participants=2)
    for p in (a, b):
        await join(client, tournament, p)
    bracket = (
        await client.post(f"{API}/{tournament['id']}/start", headers=organiser.headers)
    ).json()
    final = bracket["rounds"][0]["matches"][0]
    url = f"{API}/{tournament['id']}/matches/{final['id']}"
    named = await client.patch(url, json={"channel_id": channel["slug"]}, headers=organiser.headers)
    assert named.status_code == 200, named.text
    shown = named.json()["rounds"][0]["matches"][0]["channel"]
    assert (shown["id"], shown["url"]) == (channel["id"], f"/{channel['slug']}")
    refused = await client.patch(url, json={"channel_id": channel["slug"]}, headers=a.headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "NOT_ORGANISER")
    unknown = await client.patch(url, json={"channel_id": "nobody"}, headers=organiser.headers)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "CHANNEL_NOT_FOUND")


# --- bad input --------------------------------------------------------------------------------


async def test_a_fee_the_wallet_cannot_pay_moves_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    organiser, player = await register(client), await register(client)
    await fund(client, player, 1000)
    tournament = await create(client, organiser, entry_fee_tokens=1500)
    before = await movements(app)
    refused = await join(client, tournament, player)
    assert (refused.status_code, refused.json()["code"]) == (402, "INSUFFICIENT_BALANCE")
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert await balance(client, player) == 1000
    assert await movements(app) == before
    after = (await client.get(f"{API}/{tournament['id']}")).json()
    assert (after["participant_count"], after["prize_pool_tokens"]) == (0, 0)
    await books(app)


async def test_joining_full_started_or_twice(client: httpx.AsyncClient) -> None:
    organiser = await register(client)
    a, b, c = [await register(client) for _ in range(3)]
    tournament = await create(client, organiser, max_participants=2)
    assert (await join(client, tournament, a)).status_code == 200
    twice = await join(client, tournament, a)
    assert (twice.status_code, twice.json()["code"]) == (409, "ALREADY_JOINED")
    assert (await join(client, tournament, b)).status_code == 200
    full = await join(client, tournament, c)
    assert (full.status_code, full.json()["code"]) == (409, "TOURNAMENT_FULL")

    other = await create(client, organiser, max_participants=8)
    await join(client, other, a)
    await join(client, other, b)
    await client.post(f"{API}/{other['id']}/start", headers=organiser.headers)
    late = await join(client, other, c)
    assert (late.status_code, late.json()["code"]) == (409, "TOURNAMENT_NOT_OPEN")
    leaving = await client.post(f"{API}/{other['id']}/leave", headers=a.headers)
    assert (leaving.status_code, leaving.json()["code"]) == (409, "TOURNAMENT_NOT_OPEN")
    shown = (await client.get(f"{API}/{other['id']}")).json()
    assert shown["participant_count"] == 2


async def test_bad_starts_results_and_leaves(client: httpx.AsyncClient) -> None:
    organiser = await register(client)
    a, b, c = [await register(client) for _ in range(3)]
    tournament = await create(client, organiser, max_participants=4)
    tid = tournament["id"]
    assert (await join(client, tournament, a)).status_code == 200
    alone = await client.post(f"{API}/{tid}/start", headers=organiser.headers)
    assert (alone.status_code, alone.json()["code"]) == (409, "NOT_ENOUGH_PARTICIPANTS")
    not_in = await client.post(f"{API}/{tid}/leave", headers=b.headers)
    assert (not_in.status_code, not_in.json()["code"]) == (409, "NOT_A_PARTICIPANT")
    await join(client, tournament, b)
    await join(client, tournament, c)
    by_player = await client.post(f"{API}/{tid}/start", headers=a.headers)
    assert (by_player.status_code, by_player.json()["code"]) == (403, "NOT_ORGANISER")
    no_board = await client.post(
        f"{API}/{tid}/start", json={"seeding": "leaderboard"}, headers=organiser.headers
    )
    assert (no_board.status_code, no_board.json()["code"]) == (422, "VALIDATION_ERROR")
    bad_board = await client.post(
        f"{API}/{tid}/start",
        json={"seeding": "leaderboard", "leaderboard": "nope"},
        headers=organiser.headers,
    )
    assert (bad_board.status_code, bad_board.json()["code"]) == (422, "VALIDATION_ERROR")
    assert (await client.get(f"{API}/{tid}")).json()["status"] == "open"  # nothing changed

    bracket = (await client.post(f"{API}/{tid}/start", headers=organiser.headers)).json()
    again = await client.post(f"{API}/{tid}/start", headers=organiser.headers)
    assert (again.status_code, again.json()["code"]) == (409, "TOURNAMENT_NOT_OPEN")
    final = bracket["rounds"][1]["matches"][0]
    pending = await client.post(
        f"{API}/{tid}/matches/{final['id']}/result",
        json={"winner_id": a.id},
        headers=organiser.headers,
    )
    assert (pending.status_code, pending.json()["code"]) == (409, "MATCH_NOT_READY")
    match = ready(bracket)[0]
    outsider = await client.post(
        f"{API}/{tid}/matches/{match['id']}/result",
        json={"winner_id": str(uuid.uuid4())},
        headers=organiser.headers,
    )
    assert (outsider.status_code, outsider.json()["code"]) == (422, "VALIDATION_ERROR")
    unknown = await client.post(
        f"{API}/{tid}/matches/{uuid.uuid4()}/result",
        json={"winner_id": a.id},
        headers=organiser.headers,
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "MATCH_NOT_FOUND")
    anonymous = await client.post(
        f"{API}/{tid}/matches/{match['id']}/result", json={"winner_id": a.id}
    )
    assert anonymous.status_code == 401
    missing = await client.get(f"{API}/{uuid.uuid4()}")
    assert (missing.status_code, missing.json()["code"]) == (404, "TOURNAMENT_NOT_FOUND")
    assert (await client.get(f"{API}/{tid}")).json() == {**bracket}


@pytest.mark.parametrize(
    "fields",
    [
        {"prize_split": [60, 30]},  # not 100
        {"prize_split": [100, 0]},
        {"prize_split": [50, 50], "max_participants": 2, "format": "knockout"},
        {"max_participants": 1},
        {"max_participants": 1000},
        {"starts_at": "2020-01-01T00:00:00Z"},
        {"starts_at": "2030-01-01T00:00:00"},  # no time zone
        {"entry_fee_tokens": -5},
        {"entry_fee_tokens": 1.5},
        {"name": "   "},
        {"prize_split": [25, 25, 25, 25], "max_participants": 3},
    ],
)
async def test_bad_tournaments_are_refused(
    client: httpx.AsyncClient, fields: dict[str, Any]
) -> None:
    organiser = await register(client)
    body = {
        "name": "Cup",
        "category": "chess",
        "max_participants": 8,
        "starts_at": later(),
        **fields,
    }
    answer = await client.post(API, json=body, headers=organiser.headers)
    assert (answer.status_code, answer.json()["code"]) == (422, "VALIDATION_ERROR"), answer.text
    listed = (await client.get(API, params={"status": "open"})).json()["data"]
    assert all(t["organiser"]["id"] != organiser.id for t in listed)


async def test_list_filters_by_status(client: httpx.AsyncClient) -> None:
    organiser = await register(client)
    one = await create(client, organiser, name="One")
    two = await create(client, organiser, name="Two")
    await client.post(f"{API}/{two['id']}/cancel", headers=organiser.headers)
    cancelled = (await client.get(API, params={"status": "cancelled"})).json()["data"]
    assert two["id"] in {t["id"] for t in cancelled}
    assert one["id"] not in {t["id"] for t in cancelled}
    bad = await client.get(API, params={"status": "sleeping"})
    assert (bad.status_code, bad.json()["code"]) == (422, "VALIDATION_ERROR")


# --- the room -----------------------------------------------------------------------------------


async def test_the_tournament_room_sees_the_bracket_advance(
    tmp_path: Path, committed_database_url: str
) -> None:
    async with serving(make_settings(tmp_path, committed_database_url)) as live:
        organiser, a, b = await live.account(), await live.account(), await live.account()
        created = await live.http.post(
            API,
            json={"name": "Live Cup", "category": "chess", "max_participants": 2,
                  "starts_at": later()},
            headers=organiser.headers,
        )  # fmt: skip
        tid = created.json()["id"]
        watcher = await live.connect()  # anonymous viewers may watch a bracket
        joined = await watcher.call("tournament:join", {"tournamentId": tid})
        assert joined["ok"], joined
        assert joined["tournament"]["status"] == "open"
        unknown = await watcher.call("tournament:join", {"tournamentId": str(uuid.uuid4())})
        assert (unknown["ok"], unknown["error"]["code"]) == (False, "TOURNAMENT_NOT_FOUND")

        await live.http.post(f"{API}/{tid}/join", headers=a.headers)
        update = await watcher.wait_for("tournament:updated")
        assert update["type"] == "tournament:updated"
        assert update["payload"]["participant_count"] == 1
        await live.http.post(f"{API}/{tid}/join", headers=b.headers)
        started = await live.http.post(f"{API}/{tid}/start", headers=organiser.headers)
        final = started.json()["rounds"][0]["matches"][0]
        await live.http.post(
            f"{API}/{tid}/matches/{final['id']}/result",
            json={"winner_id": a.id},
            headers=organiser.headers,
        )

        done = await watcher.wait_for(
            "tournament:updated", where=lambda e: e["payload"]["status"] == "completed"
        )
        assert done["payload"]["winner_id"] == a.id
        last = watcher.received("tournament:updated")[-1]["payload"]
        assert (last["status"], last["winner_id"]) == ("completed", a.id)


async def test_leaving_the_room_stops_its_updates(
    tmp_path: Path, committed_database_url: str
) -> None:
    """`tournament:leave` takes the socket out of the room (another watcher still hears every
    change); joining an unknown tournament, or one by a malformed id, acks an error."""
    async with serving(make_settings(tmp_path, committed_database_url)) as live:
        organiser = await live.account()
        players = [await live.account() for _ in range(3)]
        created = await live.http.post(
            API,
            json={"name": "Quiet Cup", "category": "chess", "max_participants": 4,
                  "starts_at": later()},
            headers=organiser.headers,
        )  # fmt: skip
        tid = created.json()["id"]
        leaver, stayer = await live.connect(), await live.connect(players[0])
        for watcher in (leaver, stayer):
            assert (await watcher.call("tournament:join", {"tournamentId": tid}))["ok"]

        def count(n: int) -> Any:
            return lambda e: e["payload"]["participant_count"] == n

        await live.http.post(f"{API}/{tid}/join", headers=players[0].headers)
        for watcher in (leaver, stayer):
            await watcher.wait_for("tournament:updated", where=count(1))
        left = await leaver.call("tournament:leave", {"tournamentId": tid})
        assert (left["ok"], left["tournament_id"]) == (True, tid)
        heard = len(leaver.received("tournament:updated"))
        assert heard == 1

        await live.http.post(f"{API}/{tid}/join", headers=players[1].headers)
        await live.http.post(f"{API}/{tid}/join", headers=players[2].headers)
        await stayer.wait_for("tournament:updated", where=count(3))
        # The room's events go out in order: the leaver would have had these by now.
        await asyncio.sleep(0.3)
        assert len(leaver.received("tournament:updated")) == heard

        # Joining again brings the updates back.
        assert (await leaver.call("tournament:join", {"tournamentId": tid}))["ok"]
        await live.http.post(f"{API}/{tid}/leave", headers=players[2].headers)
        await leaver.wait_for("tournament:updated", where=count(2))

        unknown = await leaver.call("tournament:join", {"tournamentId": MISSING_ID})
        assert (unknown["ok"], unknown["error"]["code"]) == (False, "TOURNAMENT_NOT_FOUND")
        malformed = await leaver.call("tournament:join", {"tournamentId": "not-an-id"})
        assert (malformed["ok"], malformed["error"]["code"]) == (False, "VALIDATION_ERROR")
        missing = await leaver.call("tournament:join", {})
        assert (missing["ok"], missing["error"]["code"]) == (False, "VALIDATION_ERROR")


# Fixed, not uuid4(): a tournament nobody created.
MISSING_ID = "00000000-0000-4000-8000-000000000000"


async def test_concurrent_joins_never_overfill(tmp_path: Path, committed_database_url: str) -> None:
    """Twelve players join a four-place tournament at once: four get in, eight are told it is
    full, and the pool holds four fees (SQLite's write lock; PostgreSQL's row lock)."""
    async with serving(make_settings(tmp_path, committed_database_url)) as live:
        organiser = await live.account()
        players = [await live.account() for _ in range(12)]
        for p in players:
            await fund(live.http, p, 1000)
        tournament = await create(live.http, organiser, max_participants=4, entry_fee_tokens=100)
        answers = await asyncio.gather(*(join(live.http, tournament, p) for p in players))
        codes = sorted((a.status_code, a.json().get("code")) for a in answers)
        assert codes == [(200, None)] * 4 + [(409, "TOURNAMENT_FULL")] * 8
        shown = (await live.http.get(f"{API}/{tournament['id']}")).json()
        assert (shown["participant_count"], shown["prize_pool_tokens"]) == (4, 400)
        assert sorted([await balance(live.http, p) for p in players]) == [900] * 4 + [1000] * 8
        await books(live.app)


async def test_the_routes_and_their_errors_are_in_the_openapi_document(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    wanted = {
        ("post", "/api/v1/tournaments"): {"201", "401", "422"},
        ("get", "/api/v1/tournaments"): {"200", "422"},
        ("get", "/api/v1/tournaments/{tournament_id}"): {"200", "404"},
        ("post", "/api/v1/tournaments/{tournament_id}/join"): {"200", "401", "402", "404", "409"},
        ("post", "/api/v1/tournaments/{tournament_id}/leave"): {"200", "402", "409"},
        ("post", "/api/v1/tournaments/{tournament_id}/start"): {"200", "403", "409", "422"},
        ("post", "/api/v1/tournaments/{tournament_id}/cancel"): {"200", "403", "409"},
        ("post", "/api/v1/tournaments/{tournament_id}/matches/{match_id}/result"): {
            "200", "403", "404", "409", "422",
        },
        ("patch", "/api/v1/tournaments/{tournament_id}/matches/{match_id}"): {"200", "403", "404"},
        ("get", "/api/v1/leaderboards/{name}"): {"200", "404", "422"},
        ("get", "/api/v1/leaderboards/{name}/entries/{user_id}"): {"200", "404", "422"},
    }  # fmt: skip
    for (method, path), statuses in wanted.items():
        responses = paths[path][method]["responses"]
        assert statuses <= set(responses), (method, path, sorted(responses))
        for status in statuses - {"200", "201"}:
            assert "application/problem+json" in responses[status]["content"], (path, status)
