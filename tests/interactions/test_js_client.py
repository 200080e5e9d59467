"""The official Socket.IO JS client (v4, run by node) reacts and votes in a live room."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from tests.factories import go_live, make_channel
from tests.realtime.conftest import LiveServer

NODE_DIR = Path(__file__).parents[1] / "e2e" / "node"


async def test_js_client_reacts_votes_and_hears_the_room(live: LiveServer) -> None:
    node = shutil.which("node")
    assert node, "node is needed (the machine image ships it)"
    owner, viewer = await live.account(), await live.account()
    channel = await make_channel(live.http, owner)
    stream_id = await go_live(live.app, channel["slug"])
    poll = await live.http.post(
        "/api/v1/polls",
        json={"stream_id": stream_id, "question": "Q?", "choices": ["no", "yes"]},
        headers=owner.headers,
    )
    assert poll.status_code == 201, poll.text

    process = await asyncio.create_subprocess_exec(
        node,
        str(NODE_DIR / "interact.mjs"),
        live.url,
        viewer.access_token,
        stream_id,
        poll.json()["id"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, (out.decode(), err.decode())
    lines: dict[str, Any] = {}
    for raw in out.decode().splitlines():
        line = json.loads(raw)
        lines.setdefault(line["kind"], line["data"])
    assert lines["reaction_ack"] == {
        "ok": True,
        "stream_id": stream_id,
        "emoji": "scFire",
        "window_ms": 250,
    }
    assert lines["vote_ack"] == {"ok": True, "poll_id": poll.json()["id"], "choice": 1}
    assert lines["again_ack"]["ok"] is False
    assert lines["again_ack"]["error"]["code"] == "ALREADY_VOTED"
    burst = lines["reaction:sent"]
    assert burst["type"] == "reaction:sent"
    assert burst["payload"]["reactions"] == [{"emoji": "scFire", "fallback": "🔥", "count": 1}]
    tallies = lines["poll:voted"]["payload"]
    assert [c["votes"] for c in tallies["choices"]] == [0, 1]
