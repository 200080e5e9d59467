"""Polls and reactions in a real room: python-socketio clients on a served app, with the
windows and the sweep running (and Redis under them when STAGECAST_TEST_REDIS_URL is set)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

from sqlalchemy import update

from stagecast.db.base import utcnow
from stagecast.interactions.models import Poll
from stagecast.interactions.pulse import pulse_of
from stagecast.interactions.service import AlreadyVoted
from stagecast.runtime import Runtime
from tests.factories import Account, go_live, make_channel
from tests.interactions.test_polls import votes_stored
from tests.realtime.conftest import Listener, LiveServer


async def _room(live: LiveServer) -> tuple[Account, str, str]:
    owner = await live.account()
    channel = await make_channel(live.http, owner)
    return owner, channel["id"], await go_live(live.app, channel["slug"])


async def _watcher(live: LiveServer, stream_id: str, account: Account | None = None) -> Listener:
    watcher = await live.connect(account)
    assert (await watcher.call("stream:join", {"streamId": stream_id}))["ok"]
    return watcher


async def test_votes_from_sockets_and_http_reach_the_room_as_coalesced_tallies(
    live: LiveServer,
) -> None:
    owner, _channel_id, stream_id = await _room(live)
    watcher = await _watcher(live, stream_id)
    created = await live.http.post(
        "/api/v1/polls",
        json={"stream_id": stream_id, "question": "Best?", "choices": ["A", "B", "C"]},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    poll_id = created.json()["id"]
    announced = await watcher.wait_for("poll:created")
    assert announced["type"] == "poll:created"
    assert announced["payload"]["id"] == poll_id

    voters = [await live.account() for _ in range(40)]
    sockets = [await live.connect(voter) for voter in voters[:20]]
    began = time.monotonic()

    async def by_socket(index: int) -> None:
        answer = await sockets[index].call("poll:vote", {"pollId": poll_id, "choice": index % 3})
        assert answer["ok"] is True, answer

    async def by_http(index: int) -> None:
        voted = await live.http.post(
            f"/api/v1/polls/{poll_id}/vote",
            json={"choice": index % 3},
            headers=voters[index].headers,
        )
        assert voted.status_code == 200, voted.text

    await asyncio.gather(*(by_socket(i) for i in range(20)), *(by_http(i) for i in range(20, 40)))
    last = await watcher.wait_for("poll:voted", lambda event: event["payload"]["total_votes"] == 40)
    elapsed = time.monotonic() - began
    assert [c["votes"] for c in last["payload"]["choices"]] == [14, 13, 13]
    tallies = watcher.received("poll:voted")
    # One event a window at most, never one per vote.
    windows = elapsed / (live.app.state.runtime.settings.interactions.window_ms / 1000)
    assert len(tallies) <= windows + 2, (len(tallies), windows)
    totals = [event["payload"]["total_votes"] for event in tallies]
    assert totals == sorted(totals)

    twice = await sockets[0].call("poll:vote", {"pollId": poll_id, "choice": 1})
    assert twice["ok"] is False
    assert twice["error"]["code"] == "ALREADY_VOTED"
    anonymous = await watcher.call("poll:vote", {"pollId": poll_id, "choice": 1})
    assert anonymous["ok"] is False
    assert anonymous["error"]["status"] == 401
    garbage = await sockets[1].call("poll:vote", {"pollId": "nope", "choice": None})
    assert garbage["ok"] is False
    assert garbage["error"]["code"] == "VALIDATION_ERROR"

    ended = await live.http.post(f"/api/v1/polls/{poll_id}/end", headers=owner.headers)
    assert ended.status_code == 200
    final = await watcher.wait_for("poll:ended")
    assert final["payload"]["total_votes"] == 40
    assert final["payload"]["status"] == "ended"
    assert await votes_stored(live.app, poll_id) == 40


async def test_a_poll_ends_by_itself_when_its_time_runs_out(live: LiveServer) -> None:
    runtime: Runtime = live.app.state.runtime
    owner, channel_id, stream_id = await _room(live)
    watcher = await _watcher(live, stream_id)
    created = await live.http.post(
        "/api/v1/polls",
        json={"channel_id": channel_id, "question": "Soon?", "choices": ["Yes", "No"]},
        headers=owner.headers,
    )
    poll_id = created.json()["id"]
    async with runtime.db.session() as session, session.begin():
        await session.execute(
            update(Poll)
            .where(Poll.id == uuid.UUID(poll_id))
            .values(ends_at=utcnow() + timedelta(milliseconds=300))
        )
    final = await watcher.wait_for("poll:ended", within=5)
    assert final["payload"]["id"] == poll_id
    assert final["payload"]["end_reason"] == "expired"
    await asyncio.sleep(1.5)  # the next sweeps end nothing twice
    assert len(watcher.received("poll:ended")) == 1


async def test_reactions_reach_every_viewer_as_bursts(live: LiveServer) -> None:
    _, channel_id, stream_id = await _room(live)
    first = await _watcher(live, stream_id, await live.account())
    second = await _watcher(live, stream_id, await live.account())
    reactors = [await _watcher(live, stream_id, await live.account()) for _ in range(10)]

    async def react(listener: Listener, emoji: str) -> None:
        answer = await listener.call("reaction:send", {"emoji": emoji})
        assert answer["ok"] is True, answer

    await asyncio.gather(
        *(react(r, "scHype") for r in reactors), *(react(r, "🎉") for r in reactors[:5])
    )
    await asyncio.gather(react(first, "scGG"), react(second, "scGG"))

    def counted(listener: Listener) -> dict[str, int]:
        totals: dict[str, int] = {}
        for event in listener.received("reaction:sent"):
            assert event["payload"]["channel_id"] == channel_id
            for item in event["payload"]["reactions"]:
                totals[item["emoji"]] = totals.get(item["emoji"], 0) + item["count"]
        return totals

    for listener in (first, second):
        await listener.wait_for(
            "reaction:sent",
            lambda _, who=listener: counted(who) == {"scHype": 15, "scGG": 2},  # type: ignore[misc]
            within=5,
        )
        assert len(listener.received("reaction:sent")) < 17  # bursts, not one per reaction

    outside = await first.call("reaction:send", {"emoji": "🍕"})
    assert outside["ok"] is False
    assert outside["error"]["code"] == "REACTION_NOT_ALLOWED"
    anonymous = await _watcher(live, stream_id)
    refused = await anonymous.call("reaction:send", {"emoji": "scHype"})
    assert refused["ok"] is False
    assert refused["error"]["status"] == 401
    unjoined = await live.connect(await live.account())
    lost = await unjoined.call("reaction:send", {"emoji": "scHype"})
    assert lost["ok"] is False
    assert lost["error"]["code"] == "VALIDATION_ERROR"


async def test_votes_cast_at_once_are_written_together_and_each_answered(
    live: LiveServer,
) -> None:
    """Group commit: votes arriving together share transactions; each caller still hears its
    own outcome, after the commit (a repeat in the same batch is ALREADY_VOTED)."""
    owner, channel_id, _stream_id = await _room(live)
    created = await live.http.post(
        "/api/v1/polls",
        json={"channel_id": channel_id, "question": "Which?", "choices": ["A", "B"]},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    poll_id = uuid.UUID(created.json()["id"])
    fans = [await live.account() for _ in range(24)]
    box = pulse_of(live.app.state.runtime).ballots
    before, now = box.batches, utcnow()

    async def cast(fan: Account, choice: int) -> Poll:
        return await box.cast(user_id=uuid.UUID(fan.id), poll_id=poll_id, choice=choice, now=now)

    outcomes = await asyncio.gather(
        *(cast(fan, index % 2) for index, fan in enumerate(fans)),
        cast(fans[0], 1),
        return_exceptions=True,
    )
    assert [type(o) for o in outcomes if isinstance(o, BaseException)] == [AlreadyVoted]
    assert all(o.id == poll_id for o in outcomes if isinstance(o, Poll))
    assert 1 <= box.batches - before < len(fans)
    assert await votes_stored(live.app, str(poll_id)) == len(fans)
    seen = await live.http.get(f"/api/v1/polls/{poll_id}", headers=fans[0].headers)
    assert [c["votes"] for c in seen.json()["choices"]] == [12, 12]
    assert seen.json()["my_vote"] == 0
