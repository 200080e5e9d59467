"""Polls over HTTP: who may start one, one open per channel, one final vote, the end."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select, update

from stagecast.db.base import utcnow
from stagecast.interactions import service as interactions
from stagecast.interactions.models import Poll, PollVote
from stagecast.runtime import Runtime
from tests.factories import Account, go_live, make_channel, register
from tests.money.test_wallet import buy


async def start_poll(
    client: httpx.AsyncClient, account: Account, channel_id: str, **fields: Any
) -> httpx.Response:
    body = {"channel_id": channel_id, "question": "Next game?", "choices": ["Chess", "Go"]}
    return await client.post("/api/v1/polls", json={**body, **fields}, headers=account.headers)


async def owner_with_channel(client: httpx.AsyncClient) -> tuple[Account, dict[str, Any]]:
    owner = await register(client)
    return owner, await make_channel(client, owner)


async def votes_stored(app: FastAPI, poll_id: str) -> int:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        count = await session.scalar(
            select(func.count()).where(PollVote.poll_id == uuid.UUID(poll_id))
        )
    return int(count or 0)


async def test_owner_starts_a_poll_and_viewers_vote_once(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner, channel = await owner_with_channel(client)
    stream_id = await go_live(app, channel["id"])
    started = await start_poll(client, owner, channel["id"], duration=60)
    assert started.status_code == 201, started.text
    poll = started.json()
    assert poll["status"] == "active"
    assert poll["stream_id"] == stream_id
    assert [c["title"] for c in poll["choices"]] == ["Chess", "Go"]
    assert 55 <= poll["seconds_left"] <= 60
    assert poll["total_votes"] == 0

    fans = [await register(client) for _ in range(3)]
    for index, fan in enumerate(fans):
        voted = await client.post(
            f"/api/v1/polls/{poll['id']}/vote", json={"choice": index % 2}, headers=fan.headers
        )
        assert voted.status_code == 200, voted.text
        assert voted.json()["my_vote"] == index % 2
    again = await client.post(
        f"/api/v1/polls/{poll['id']}/vote", json={"choice": 1}, headers=fans[0].headers
    )
    assert again.status_code == 409
    assert again.json()["code"] == "ALREADY_VOTED"

    seen = (await client.get(f"/api/v1/polls/{poll['id']}", headers=fans[0].headers)).json()
    assert [c["votes"] for c in seen["choices"]] == [2, 1]
    assert seen["total_votes"] == 3
    assert seen["my_vote"] == 0
    assert seen["choices"][0]["percent"] == 66.7
    anonymous = (await client.get(f"/api/v1/polls/{poll['id']}")).json()
    assert anonymous["my_vote"] is None
    assert anonymous["total_votes"] == 3
    assert await votes_stored(app, poll["id"]) == 3


async def test_bad_polls_and_bad_votes_change_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner, channel = await owner_with_channel(client)
    six = await start_poll(client, owner, channel["id"], choices=list("abcdef"))
    assert six.status_code == 422
    too_long = await start_poll(client, owner, channel["id"], duration=1801)
    assert too_long.status_code == 422
    too_short = await start_poll(client, owner, channel["id"], duration=14)
    assert too_short.status_code == 422
    same = await start_poll(client, owner, channel["id"], choices=["Yes", "yes"])
    assert same.status_code == 422
    both = await start_poll(client, owner, channel["id"], stream_id=str(uuid.uuid4()))
    assert both.status_code == 422
    stranger = await register(client)
    forbidden = await start_poll(client, stranger, channel["id"])
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "MODERATOR_REQUIRED"

    poll = (await start_poll(client, owner, channel["id"])).json()
    second = await start_poll(client, owner, channel["id"])
    assert second.status_code == 409
    assert second.json()["code"] == "POLL_ALREADY_ACTIVE"

    missing = await client.post(
        f"/api/v1/polls/{poll['id']}/vote", json={"choice": 2}, headers=stranger.headers
    )
    assert missing.status_code == 422
    assert missing.json()["code"] == "INVALID_CHOICE"
    text = await client.post(
        f"/api/v1/polls/{poll['id']}/vote", json={"choice": "0"}, headers=stranger.headers
    )
    assert text.status_code == 422
    anonymous = await client.post(f"/api/v1/polls/{poll['id']}/vote", json={"choice": 0})
    assert anonymous.status_code == 401
    unknown = await client.post(
        f"/api/v1/polls/{uuid.uuid4()}/vote", json={"choice": 0}, headers=stranger.headers
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "POLL_NOT_FOUND"
    not_theirs = await client.post(f"/api/v1/polls/{poll['id']}/end", headers=stranger.headers)
    assert not_theirs.status_code == 403
    assert await votes_stored(app, poll["id"]) == 0


async def test_a_poll_ended_early_takes_no_votes_and_keeps_its_tallies(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner, channel = await owner_with_channel(client)
    poll = (await start_poll(client, owner, channel["id"])).json()
    fan, late = await register(client), await register(client)
    await client.post(f"/api/v1/polls/{poll['id']}/vote", json={"choice": 1}, headers=fan.headers)
    ended = await client.post(f"/api/v1/polls/{poll['id']}/end", headers=owner.headers)
    assert ended.status_code == 200, ended.text
    result = ended.json()
    assert result["status"] == "ended"
    assert result["end_reason"] == "ended"
    assert [c["votes"] for c in result["choices"]] == [0, 1]
    after = await client.post(
        f"/api/v1/polls/{poll['id']}/vote", json={"choice": 0}, headers=late.headers
    )
    assert after.status_code == 409
    assert after.json()["code"] == "POLL_ENDED"
    twice = await client.post(f"/api/v1/polls/{poll['id']}/end", headers=owner.headers)
    assert twice.status_code == 409
    # The channel is free for the next poll.
    assert (await start_poll(client, owner, channel["id"])).status_code == 201


async def test_a_poll_whose_time_ran_out_is_over_before_and_after_the_sweep(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    runtime: Runtime = app.state.runtime
    owner, channel = await owner_with_channel(client)
    poll = (await start_poll(client, owner, channel["id"], duration=15)).json()
    fan = await register(client)
    await client.post(f"/api/v1/polls/{poll['id']}/vote", json={"choice": 0}, headers=fan.headers)
    async with runtime.db.session() as session, session.begin():
        await session.execute(
            update(Poll)
            .where(Poll.id == uuid.UUID(poll["id"]))
            .values(ends_at=utcnow() - timedelta(seconds=1))
        )
    late = await register(client)
    refused = await client.post(
        f"/api/v1/polls/{poll['id']}/vote", json={"choice": 1}, headers=late.headers
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "POLL_ENDED"
    seen = (await client.get(f"/api/v1/polls/{poll['id']}")).json()
    assert seen["status"] == "ended"
    assert seen["end_reason"] == "expired"

    assert runtime.pulse is not None
    assert await runtime.pulse.sweep() == 1
    assert await runtime.pulse.sweep() == 0  # once
    async with runtime.db.session() as session, session.begin():
        stored = await session.get_one(Poll, uuid.UUID(poll["id"]))
        assert stored.final_tallies == [1, 0]
        assert stored.end_reason == "expired"


async def test_an_expired_poll_does_not_block_the_next_one(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    runtime: Runtime = app.state.runtime
    owner, channel = await owner_with_channel(client)
    first = (await start_poll(client, owner, channel["id"])).json()
    async with runtime.db.session() as session, session.begin():
        await session.execute(
            update(Poll)
            .where(Poll.id == uuid.UUID(first["id"]))
            .values(ends_at=utcnow() - timedelta(seconds=1))
        )
    second = await start_poll(client, owner, channel["id"])
    assert second.status_code == 201, second.text
    history = await client.get(f"/api/v1/channels/{channel['slug']}/polls")
    assert [p["id"] for p in history.json()["data"]] == [second.json()["id"], first["id"]]
    active = await client.get(f"/api/v1/channels/{channel['id']}/polls?status=active")
    assert [p["id"] for p in active.json()["data"]] == [second.json()["id"]]
    ended = await client.get(f"/api/v1/channels/{channel['id']}/polls?status=ended")
    assert [p["status"] for p in ended.json()["data"]] == ["ended"]
    bad = await client.get(f"/api/v1/channels/{channel['id']}/polls?status=open")
    assert bad.status_code == 422


async def test_moderators_start_polls_and_subscribers_only_polls_check(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner, channel = await owner_with_channel(client)
    moderator = await register(client)
    appointed = await client.post(
        f"/api/v1/channels/{channel['id']}/moderators",
        json={"user_id": moderator.id},
        headers=owner.headers,
    )
    assert appointed.status_code == 200, appointed.text
    started = await start_poll(client, moderator, channel["id"], subscribers_only=True)
    assert started.status_code == 201, started.text
    poll = started.json()
    lurker, fan = await register(client), await register(client)
    refused = await client.post(
        f"/api/v1/polls/{poll['id']}/vote", json={"choice": 0}, headers=lurker.headers
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "SUBSCRIBERS_ONLY"
    await buy(client, fan, 1000)
    subscribed = await client.post(
        "/api/v1/subscriptions", json={"channel_id": channel["id"]}, headers=fan.headers
    )
    assert subscribed.status_code == 201, subscribed.text
    voted = await client.post(
        f"/api/v1/polls/{poll['id']}/vote", json={"choice": 0}, headers=fan.headers
    )
    assert voted.status_code == 200, voted.text
    assert await votes_stored(app, poll["id"]) == 1


async def test_a_banned_viewer_cannot_vote(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner, channel = await owner_with_channel(client)
    poll = (await start_poll(client, owner, channel["id"])).json()
    troll = await register(client)
    banned = await client.post(
        f"/api/v1/channels/{channel['id']}/bans",
        json={"user_id": troll.id},
        headers=owner.headers,
    )
    assert banned.status_code == 201, banned.text
    refused = await client.post(
        f"/api/v1/polls/{poll['id']}/vote", json={"choice": 0}, headers=troll.headers
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "USER_BANNED"


async def test_a_vote_checked_before_the_end_but_written_after_it_is_refused(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner, channel = await owner_with_channel(client)
    await go_live(app, channel["id"])
    poll = (await start_poll(client, owner, channel["id"], duration=60)).json()
    poll_id = uuid.UUID(poll["id"])
    early, late = await register(client), await register(client)
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        ends_at = await session.scalar(select(Poll.ends_at).where(Poll.id == poll_id))
    assert ends_at is not None
    # Cast after the poll's time: refused even though nobody ended it yet.
    async with runtime.db.session() as session, session.begin():
        outcomes = await interactions.write_votes(
            session,
            [
                interactions.Ballot(poll_id, uuid.UUID(early.id), 0, cast_at=utcnow()),
                interactions.Ballot(poll_id, uuid.UUID(late.id), 1, cast_at=ends_at),
            ],
        )
    assert outcomes == [None, interactions.PollEnded]
    # Ended (early, by its owner) between a vote's check and its batch: refused, not counted.
    ended = await client.post(f"/api/v1/polls/{poll['id']}/end", headers=owner.headers)
    assert ended.status_code == 200, ended.text
    async with runtime.db.session() as session, session.begin():
        outcomes = await interactions.write_votes(
            session, [interactions.Ballot(poll_id, uuid.UUID(late.id), 1, cast_at=utcnow())]
        )
    assert outcomes == [interactions.PollEnded]
    assert await votes_stored(app, poll["id"]) == 1
    assert [c["votes"] for c in ended.json()["choices"]] == [1, 0]
