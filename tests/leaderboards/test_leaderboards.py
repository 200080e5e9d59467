"""Leaderboards: what each board counts, ranks with ties, neighbours, bad names and periods, and
the same ranks from Redis sorted sets as from the database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from stagecast.accounts.models import User
from stagecast.app import create_app
from stagecast.channels import service as channels
from stagecast.chat import service as chat
from stagecast.db.engine import Database
from stagecast.leaderboards import service as leaderboards
from stagecast.leaderboards.service import Period, period_start
from stagecast.runtime import Runtime
from tests.conftest import TEST_REDIS_URL, make_settings
from tests.factories import Account, go_live, make_channel, register

API = "/api/v1/leaderboards"


async def fund(client: httpx.AsyncClient, account: Account, tokens: int) -> None:
    """Buy tokens through the sandbox checkout, as a viewer would."""
    started = await client.post(
        "/api/v1/wallet/buy", json={"tokens": tokens}, headers=account.headers
    )
    assert started.status_code in (200, 201), started.text
    paid = await client.post(
        f"/api/v1/wallet/sandbox/checkout/{started.json()['purchase_id']}",
        headers=account.headers,
    )
    assert paid.json()["status"] == "completed", paid.text


async def send_chat(app: FastAPI, account: Account, channel_slug: str, text: str) -> None:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        user = await session.get_one(User, uuid.UUID(account.id))
        channel = await channels.get_channel(session, channel_slug)
        await chat.send_message(
            session, user=user, channel=channel, stream_id=None, raw=text, reply_to=None
        )


async def board(client: httpx.AsyncClient, name: str, **params: Any) -> dict[str, Any]:
    answer = await client.get(f"{API}/{name}", params=params)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def ranks(data: dict[str, Any]) -> list[tuple[int, str, int]]:
    return [(e["rank"], e["user_id"], e["score"]) for e in data["data"]]


async def test_supporters_count_tips_donations_gifts_and_subscriptions(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    creator = await register(client)
    channel = await make_channel(client, creator)
    stream_id = await go_live(app, channel["slug"])
    fans = [await register(client) for _ in range(4)]
    for fan in fans:
        await fund(client, fan, 5000)
    a, b, c, d = fans
    tip = f"/api/v1/streams/{stream_id}/tips"
    assert (await client.post(tip, json={"tokens": 300}, headers=a.headers)).status_code == 201
    # b and c tie on 500: the lower user id ranks first.
    await client.post(tip, json={"tokens": 200}, headers=b.headers)
    await client.post(
        "/api/v1/donations", json={"channel_id": channel["id"], "tokens": 300}, headers=b.headers
    )
    await client.post(
        "/api/v1/gifts",
        json={"gift": "rose", "stream_id": stream_id, "quantity": 10},
        headers=c.headers,
    )
    # A private donation stays off the board; a subscription counts its price.
    await client.post(
        "/api/v1/donations",
        json={"channel_id": channel["id"], "tokens": 4000, "is_private": True},
        headers=d.headers,
    )
    subscribed = await client.post(
        "/api/v1/subscriptions", json={"channel_id": channel["id"]}, headers=a.headers
    )
    assert subscribed.status_code == 201, subscribed.text
    tier_price = await _tier_price(client, channel["slug"])

    data = await board(client, f"channel:{channel['slug']}:supporters")
    assert data["name"] == f"channel:{channel['id']}:supporters"
    tied = sorted([b.id, c.id])
    assert 300 + tier_price > 500
    assert ranks(data) == [(1, a.id, 300 + tier_price), (2, tied[0], 500), (3, tied[1], 500)]
    assert data["data"][0]["username"] == a.username
    assert d.id not in {e["user_id"] for e in data["data"]}

    entry = await client.get(f"{API}/channel:{channel['id']}:supporters/entries/{tied[1]}")
    assert entry.status_code == 200, entry.text
    body = entry.json()
    assert (body["rank"], body["score"]) == (
        next(r for r, u, _ in ranks(data) if u == tied[1]),
        500,
    )
    assert [n["user_id"] for n in body["neighbours"]] == [u for _, u, _ in ranks(data)]
    outsider = await client.get(f"{API}/channel:{channel['id']}:supporters/entries/{d.id}")
    assert (outsider.json()["rank"], outsider.json()["score"], outsider.json()["neighbours"]) == (
        None,
        0,
        [],
    )


async def _tier_price(client: httpx.AsyncClient, slug: str) -> int:
    tiers = (await client.get(f"/api/v1/channels/{slug}/subscription-tiers")).json()["data"]
    price: int = next(t["tokens_per_month"] for t in tiers if t["level"] == 1)
    return price


async def test_chat_and_followers_boards(client: httpx.AsyncClient, app: FastAPI) -> None:
    creators = [await register(client) for _ in range(3)]
    made = [await make_channel(client, c) for c in creators]
    fans = [await register(client) for _ in range(3)]
    for n, fan in enumerate(fans):
        for _ in range(n + 1):
            await send_chat(app, fan, made[0]["slug"], f"hello {n}")
    data = await board(client, f"channel:{made[0]['id']}:chat", period="day")
    assert ranks(data) == [(1, fans[2].id, 3), (2, fans[1].id, 2), (3, fans[0].id, 1)]

    # creators[1] gets three followers, creators[2] two, creators[0] one.
    for target, followers in ((1, fans), (2, fans[:2]), (0, fans[:1])):
        for fan in followers:
            answer = await client.post(
                f"/api/v1/channels/{made[target]['slug']}/follow", headers=fan.headers
            )
            assert answer.status_code in (200, 201), answer.text
    for period in ("all", "week"):
        data = await board(client, "creators:followers", period=period, limit=100)
        ours = [(u, s) for _, u, s in ranks(data) if u in {c.id for c in creators}]
        assert ours == [(creators[1].id, 3), (creators[2].id, 2), (creators[0].id, 1)]
    unfollowed = await client.delete(
        f"/api/v1/channels/{made[1]['slug']}/follow", headers=fans[0].headers
    )
    assert unfollowed.status_code in (200, 204), unfollowed.text
    data = await board(client, "creators:followers", limit=100)
    ours = [(u, s) for _, u, s in ranks(data) if u in {c.id for c in creators}]
    assert ours[0] == (sorted([creators[1].id, creators[2].id])[0], 2)


# Fixed, not uuid4(): pytest-xdist workers must collect the same parameters.
MISSING_ID = "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("nothing-like-this", 404, "LEADERBOARD_NOT_FOUND"),
        ("channel:no-such-channel:supporters", 404, "LEADERBOARD_NOT_FOUND"),
        ("channel:{channel}:bananas", 404, "LEADERBOARD_NOT_FOUND"),
        ("tournament:not-a-uuid:standings", 404, "LEADERBOARD_NOT_FOUND"),
        (f"tournament:{MISSING_ID}:standings", 404, "LEADERBOARD_NOT_FOUND"),
        ("channel:{channel}:supporters?period=year", 422, "VALIDATION_ERROR"),
        ("channel:{channel}:supporters?limit=0", 422, "VALIDATION_ERROR"),
        ("channel:{channel}:supporters?limit=101", 422, "VALIDATION_ERROR"),
        (f"channel:{{channel}}:supporters/entries/{MISSING_ID}", 404, "USER_NOT_FOUND"),
        ("channel:{channel}:supporters/entries/someone", 422, "VALIDATION_ERROR"),
        ("creators:followers/entries/{user}?period=fortnight", 422, "VALIDATION_ERROR"),
    ],
)
async def test_bad_names_and_periods(
    client: httpx.AsyncClient, path: str, status: int, code: str
) -> None:
    owner = await register(client)
    channel = await make_channel(client, owner)
    answer = await client.get(f"{API}/" + path.format(channel=channel["id"], user=owner.id))
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == code


def test_periods_are_utc_calendar_periods() -> None:
    now = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)  # a Wednesday
    assert period_start(Period.DAY, now) == datetime(2026, 12, 2, tzinfo=UTC)
    assert period_start(Period.WEEK, now) == datetime(2026, 11, 30, tzinfo=UTC)
    assert period_start(Period.MONTH, now) == datetime(2026, 12, 1, tzinfo=UTC)
    assert period_start(Period.ALL, now) is None
    assert period_start(Period.WEEK, now - timedelta(days=2)) == datetime(2026, 11, 30, tzinfo=UTC)


# --- both backends --------------------------------------------------------------------------


async def start_round_robin(
    client: httpx.AsyncClient, organiser: Account, players: list[Account]
) -> tuple[str, list[dict[str, Any]]]:
    """A started round robin of `players`: its id and its matches."""
    created = await client.post(
        "/api/v1/tournaments",
        json={"name": "Ladder", "category": "chess", "format": "round_robin",
              "max_participants": len(players), "starts_at": later()},
        headers=organiser.headers,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    tid: str = created.json()["id"]
    for player in players:
        joined = await client.post(f"/api/v1/tournaments/{tid}/join", headers=player.headers)
        assert joined.status_code == 200, joined.text
    started = await client.post(f"/api/v1/tournaments/{tid}/start", headers=organiser.headers)
    assert started.status_code == 200, started.text
    return tid, [match for round_ in started.json()["rounds"] for match in round_["matches"]]


async def decide_matches(
    client: httpx.AsyncClient,
    organiser: Account,
    tid: str,
    matches: list[dict[str, Any]],
    players: list[Account],
    beats: set[tuple[int, int]],
) -> None:
    """The organiser reports every match: (winner, loser) by the players' index in `beats`."""
    index = {player.id: n for n, player in enumerate(players)}
    for match in matches:
        a, b = (index[str(match[side]["user_id"])] for side in ("player1", "player2"))
        winner = players[a] if (a, b) in beats else players[b]
        decided = await client.post(
            f"/api/v1/tournaments/{tid}/matches/{match['id']}/result",
            json={"winner_id": winner.id},
            headers=organiser.headers,
        )
        assert decided.status_code == 200, decided.text


def later(hours: int = 1) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


async def follow(client: httpx.AsyncClient, fan: Account, slug: str, *, on: bool = True) -> None:
    path = f"/api/v1/channels/{slug}/follow"
    answer = await (
        client.post(path, headers=fan.headers) if on else client.delete(path, headers=fan.headers)
    )
    assert answer.status_code in (200, 201, 204), answer.text


async def compare_with_sql(
    client: httpx.AsyncClient, runtime: Runtime, name: str, users: list[Account]
) -> int:
    """Every period of a board from Redis against the database: every rank, with its ties, and
    every user's entry and neighbours. Returns how many entries were compared."""
    compared = 0
    for period in Period:
        data = await board(client, name, period=period.value, limit=100)
        assert data["backend"] == "redis"
        async with runtime.db.read_session() as session, session.begin():
            resolved = await leaderboards.resolve_board(session, name)
            since = period_start(period, datetime.now(UTC))
            expected = await leaderboards.sql_top(session, resolved, since, limit=100)
            assert ranks(data) == [(r, str(u), s) for r, u, s in expected], (name, period)
            assert len({s for _, _, s in expected}) < len(expected)  # ties were made
            for user in users:
                entry = await client.get(
                    f"{API}/{name}/entries/{user.id}", params={"period": period.value}
                )
                got = entry.json()
                rank, score, around = await leaderboards.sql_entry(
                    session, resolved, since, uuid.UUID(user.id)
                )
                assert (got["rank"], got["score"]) == (rank, score), (name, period, user.id)
                assert [(n["rank"], n["user_id"], n["score"]) for n in got["neighbours"]] == [
                    (r, str(u), s) for r, u, s in around
                ]
                compared += 1
    return compared


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs STAGECAST_TEST_REDIS_URL (CI sets it)")
async def test_redis_and_sql_rank_every_entry_the_same(tmp_path: Path, database: Database) -> None:
    """One sequence of tips, donations, gifts, subscriptions, chat, match results, follows and
    unfollows, with many ties; then every board and period read from the sorted sets and from
    the database, rank by rank."""
    settings = make_settings(tmp_path, "unused", redis_url=TEST_REDIS_URL)
    app = create_app(settings, database=database)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        runtime: Runtime = app.state.runtime
        creator = await register(client)
        channel = await make_channel(client, creator)
        stream_id = await go_live(app, channel["slug"])
        fans = [await register(client) for _ in range(8)]
        others = [await register(client) for _ in range(3)]
        other_channels = [await make_channel(client, other) for other in others]
        creators = [creator, *others]
        # Sets built before the events (and fed by them) as well as after them.
        early = await board(client, f"channel:{channel['id']}:supporters", period="week")
        assert (early["backend"], early["data"]) == ("redis", [])
        assert (await board(client, "creators:followers", period="day"))["data"] == []
        for n, fan in enumerate(fans):
            await fund(client, fan, 5000)
            # Amounts repeat: fans n and n + 4 end on the same score.
            tokens = 100 * (n % 4 + 1)
            await client.post(
                f"/api/v1/streams/{stream_id}/tips", json={"tokens": tokens}, headers=fan.headers
            )
            if n % 2:
                await client.post(
                    "/api/v1/donations",
                    json={"channel_id": channel["id"], "tokens": 50},
                    headers=fan.headers,
                )
            if n % 3 == 0:
                await client.post(
                    "/api/v1/subscriptions", json={"channel_id": channel["id"]}, headers=fan.headers
                )
            for _ in range(n % 3 + 1):
                await send_chat(app, fan, channel["slug"], "gg")
        await client.post(
            "/api/v1/gifts", json={"gift": "heart", "stream_id": stream_id}, headers=fans[7].headers
        )

        # Standings: 0 beats 1, 1 beats 2, 2 beats 0, 3 beats 0, 1 and 2 beat 3: fans 1 and 2
        # tie on two wins, fans 0 and 3 on one. The board is read before any result.
        players = fans[:4]
        tid, matches = await start_round_robin(client, creator, players)
        standings = f"tournament:{tid}:standings"
        assert (await board(client, standings))["data"] == []
        beats = {(0, 1), (1, 2), (2, 0), (3, 0), (1, 3), (2, 3)}
        await decide_matches(client, creator, tid, matches, players, beats)

        # Followers: others[0] and others[1] end on three, the creator and others[2] on one;
        # others[0] had four until an unfollow.
        for slug, followers in (
            (other_channels[0]["slug"], fans[:4]),
            (other_channels[1]["slug"], fans[:3]),
            (other_channels[2]["slug"], fans[4:5]),
            (channel["slug"], fans[5:6]),
        ):
            for fan in followers:
                await follow(client, fan, slug)
        await follow(client, fans[3], other_channels[0]["slug"], on=False)

        compared = 0
        users = [*fans, *creators]  # creators have no supporter points, fans no followers
        for name in (
            f"channel:{channel['id']}:supporters",
            f"channel:{channel['id']}:chat",
            standings,
            "creators:followers",
        ):
            compared += await compare_with_sql(client, runtime, name, users)
        assert compared == 4 * len(Period) * len(users)
        # The sets built while empty were brought up to date by the events' marks.
        week = await board(client, f"channel:{channel['id']}:supporters", period="week")
        assert len(week["data"]) == len(fans)
        day = await board(client, "creators:followers", period="day")
        assert [(e["user_id"], e["score"]) for e in day["data"]] == [
            *sorted([(others[0].id, 3), (others[1].id, 3)]),
            *sorted([(creator.id, 1), (others[2].id, 1)]),
        ]
