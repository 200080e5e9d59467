"""Money reaches the room live: tips, donations, gifts, subscriptions and milestones."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_settings
from tests.factories import go_live, make_channel
from tests.realtime.conftest import serving


async def test_the_room_sees_money_move(tmp_path: Path, committed_database_url: str) -> None:
    async with serving(make_settings(tmp_path, committed_database_url)) as live:
        creator, fan = await live.account(), await live.account()
        channel = await make_channel(live.http, creator)
        stream_id = await go_live(live.app, channel["slug"])
        watcher = await live.connect()
        assert (await watcher.call("stream:join", {"streamId": stream_id}))["ok"]
        owner_tab = await live.connect(creator)

        started = await live.http.post(
            "/api/v1/wallet/buy", json={"tokens": 5000}, headers=fan.headers
        )
        await live.http.post(
            f"/api/v1/wallet/sandbox/checkout/{started.json()['purchase_id']}", headers=fan.headers
        )
        await live.http.post(
            f"/api/v1/streams/{stream_id}/tips",
            json={"tokens": 100, "message": "hi!"},
            headers=fan.headers,
        )
        tip = await watcher.wait_for("tip:received")
        assert tip["type"] == "tip:received"
        assert (tip["payload"]["tokens"], tip["payload"]["message"]) == (100, "hi!")
        assert tip["payload"]["from_username"] == fan.username

        await live.http.post(
            "/api/v1/donations",
            json={
                "channel_id": channel["id"],
                "tokens": 50,
                "message": "secret",
                "is_private": True,
            },
            headers=fan.headers,
        )
        public = await watcher.wait_for("donation:received")
        assert (public["payload"]["from_username"], public["payload"]["message"]) == (None, None)
        private = await owner_tab.wait_for("donation:received")
        assert (private["payload"]["from_username"], private["payload"]["message"]) == (
            fan.username,
            "secret",
        )

        await live.http.post(
            "/api/v1/gifts", json={"gift": "heart", "stream_id": stream_id}, headers=fan.headers
        )
        assert (await watcher.wait_for("gift:sent"))["payload"]["gift_name"] == "Heart"

        await live.http.post(
            "/api/v1/subscriptions", json={"channel_id": channel["id"]}, headers=fan.headers
        )
        new = await watcher.wait_for("subscription:new")
        assert new["payload"]["username"] == fan.username
        milestone = await watcher.wait_for("milestone:reached")
        assert (milestone["payload"]["kind"], milestone["payload"]["value"]) == ("subscribers", 1)
