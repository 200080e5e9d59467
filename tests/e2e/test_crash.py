"""kill -9 with a publisher live: nothing stays stuck, nothing stored is lost or rewritten.

Real `stagecast serve` processes publish real ffmpeg media over RTMP; each source draws a box
at a random place so that two publishes never make the same bytes (a rewritten segment
cannot hash the same as the one it replaced).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from tests.conftest import TEST_REDIS_URL, fresh_database_url
from tests.e2e.serve import ServeProcess, free_port, serve_environment
from tests.factories import Account, make_channel, register
from tests.media.conftest import FFMPEG, H264_AAC, eventually, media_duration, run_ffmpeg
from tests.money.books import check_books
from tests.money.test_wallet import buy

# Short heartbeats so that a second node notices a dead one within seconds.
NODE_SETTINGS = {
    "STAGECAST_MEDIA_LADDER": "[120]",
    "STAGECAST_MEDIA_NODE_HEARTBEAT_SECONDS": "0.5",
    "STAGECAST_MEDIA_NODE_STALE_SECONDS": "3",
}


@dataclass
class Cluster:
    """Nodes that share one database, one media folder and one Redis prefix."""

    root: Path
    database_url: str
    prefix: str = field(default_factory=lambda: f"stagecast-crash:{uuid.uuid4().hex[:12]}")
    nodes: list[ServeProcess] = field(default_factory=list)

    @property
    def media(self) -> Path:
        return self.root / "var" / "media"

    def node(self) -> tuple[ServeProcess, str]:
        """A new node (not started) and its RTMP port."""
        rtmp = str(free_port())
        env = serve_environment(
            self.root / "var",
            self.database_url,
            key_prefix=self.prefix,
            STAGECAST_RTMP_PORT=rtmp,
            **NODE_SETTINGS,
        )
        node = ServeProcess(env, self.root / f"node{len(self.nodes)}.log")
        self.nodes.append(node)
        return node, rtmp


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    (tmp_path / "var").mkdir()
    if os.environ.get("STAGECAST_TEST_DATABASE_URL"):
        database_url = fresh_database_url(tmp_path, "crash")
    else:
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'stagecast.db'}"
    made = Cluster(tmp_path, database_url)
    yield made
    for node in made.nodes:
        node.stop()


async def _publisher(rtmp_port: str, key: str, seconds: float) -> asyncio.subprocess.Process:
    """A real-time H.264/AAC publisher of a pattern with a box at a random place."""
    x, y = random.randrange(0, 280), random.randrange(0, 200)
    return await asyncio.create_subprocess_exec(
        FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-vf", f"drawbox=x={x}:y={y}:w=40:h=40:color=red@1:t=fill",
        "-t", str(seconds), *H264_AAC, "-f", "flv",
        f"rtmp://127.0.0.1:{rtmp_port}/live/{key}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
    await process.wait()


def _hashes(media: Path, stream_id: str) -> dict[str, str]:
    root = media / "live" / stream_id
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if re.fullmatch(r"seg_\d+\.m4s|init(_\d+)?\.mp4", path.name)
    }


async def _live_stream(http: httpx.AsyncClient, channel: dict[str, Any]) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        answer = await http.get(f"/api/v1/channels/{channel['id']}/streams")
        live = [s for s in answer.json()["data"] if s["status"] == "live"]
        return live[0] if live else None

    data: dict[str, Any] = await eventually(found, within=30)
    return data


async def _listed_segments(http: httpx.AsyncClient, stream_id: str, at_least: int) -> bool:
    answer = await http.get(f"/hls/{stream_id}/source/index.m3u8")
    return answer.status_code == 200 and f"seg_{at_least}.m4s" in answer.text


async def _creator(http: httpx.AsyncClient) -> tuple[Account, dict[str, Any], str]:
    creator = await register(http)
    channel = await make_channel(http, creator)
    key = await http.get("/api/v1/live/streams/me/key", headers=creator.headers)
    assert key.status_code == 200, key.text
    return creator, channel, key.json()["stream_key"]


async def _check_ended_from_storage(
    http: httpx.AsyncClient, base: str, stream_id: str, before: dict[str, str], media: Path
) -> dict[str, Any]:
    """The stream ended where its stored media ends, its playlist closed, its VOD plays."""
    stream = (await http.get(f"/api/v1/streams/{stream_id}")).json()
    assert stream["status"] == "ended", stream
    started = datetime.fromisoformat(stream["started_at"])
    ended = datetime.fromisoformat(stream["ended_at"])
    assert ended > started

    playlist = (await http.get(f"/hls/{stream_id}/source/index.m3u8")).text
    assert playlist.rstrip().endswith("#EXT-X-ENDLIST"), playlist
    assert "PRELOAD-HINT" not in playlist
    assert "#EXT-X-PART:" not in playlist
    master = (await http.get(f"/hls/{stream_id}/master.m3u8")).text
    assert "source/vod.m3u8" in master

    vod = (await http.get(f"/hls/{stream_id}/source/vod.m3u8")).text
    recorded = re.findall(r"seg_\d+\.m4s", vod)
    # Every segment stored before the crash is in the recording, as it was stored.
    assert {f"source/{name}" for name in recorded} >= {k for k in before if "source/seg" in k}
    after = _hashes(media, stream_id)
    assert {k: after[k] for k in before} == before

    code, played = await run_ffmpeg(
        "-i", f"{base}/hls/{stream_id}/master.m3u8", "-map", "0", "-c", "copy", "-f", "null", "-"
    )  # fmt: skip
    assert code == 0, played[-3000:]
    duration = media_duration(played)
    assert duration >= 2
    # The stream's time on air is its stored media's, not the time until the restart.
    assert (ended - started).total_seconds() <= duration + 2.0
    return stream


async def _books_balance(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with AsyncSession(engine) as session, session.begin():
            await check_books(session)
    finally:
        await engine.dispose()


async def test_a_killed_node_ends_its_stream_on_restart_and_a_new_publish_is_a_new_stream(
    cluster: Cluster,
) -> None:
    node, rtmp = cluster.node()
    node.start()
    async with httpx.AsyncClient(base_url=node.base, timeout=20) as http:
        creator, channel, key = await _creator(http)
        viewer = await register(http)
        await buy(http, viewer, 1000)

        publisher = await _publisher(rtmp, key, seconds=60)
        try:
            stream_id = (await _live_stream(http, channel))["id"]
            await eventually(lambda: _listed_segments(http, stream_id, 3), within=30)
            tip = await http.post(
                f"/api/v1/streams/{stream_id}/tips", json={"tokens": 100}, headers=viewer.headers
            )
            assert tip.status_code == 201, tip.text
            await asyncio.sleep(1.5)  # parts of an open segment are stored too
            before = _hashes(cluster.media, stream_id)
            node.kill9()
        finally:
            await _stop(publisher)

        node.start()  # the same node again: same name, same data
        await _check_ended_from_storage(http, node.base, stream_id, before, cluster.media)
        vods = (await http.get(f"/api/v1/channels/{channel['id']}/vods")).json()["data"]
        assert [v["stream_id"] for v in vods] == [stream_id]
        closed = _hashes(cluster.media, stream_id)

        # The creator publishes again: a new stream; the old recording stays as it was.
        again = await _publisher(rtmp, key, seconds=4)
        try:
            second = await _live_stream(http, channel)
            assert second["id"] != stream_id
            assert await asyncio.wait_for(again.wait(), 60) == 0
        finally:
            await _stop(again)

        async def second_ended() -> bool:
            answer = await http.get(f"/api/v1/streams/{second['id']}")
            return bool(answer.json()["status"] == "ended")

        await eventually(second_ended, within=30)
        assert _hashes(cluster.media, stream_id) == closed
        balances = (await http.get("/api/v1/wallet/balance", headers=viewer.headers)).json()
        assert balances["token_balance"] == 900
        earned = (await http.get("/api/v1/wallet/balance", headers=creator.headers)).json()
        assert earned["earnings_balance"] == 80
    await _books_balance(cluster.database_url)


async def _viewer_socket(base: str, stream_id: str) -> tuple[socketio.AsyncClient, list[Any]]:
    """An anonymous viewer on one node, joined to the stream, recording `stream:ended`."""
    client = socketio.AsyncClient(reconnection=False)
    ended: list[Any] = []
    client.on("stream:ended", ended.append)
    await client.connect(base, transports=["websocket"], wait_timeout=10)
    joined = await client.call("stream:join", {"streamId": stream_id}, timeout=10)
    assert joined["ok"], joined
    return client, ended


async def test_another_node_ends_a_dead_nodes_stream_and_only_then(cluster: Cluster) -> None:
    first, rtmp = cluster.node()
    second, _ = cluster.node()
    first.start()
    second.start()
    async with httpx.AsyncClient(base_url=second.base, timeout=20) as http:
        _, channel, key = await _creator(http)
        publisher = await _publisher(rtmp, key, seconds=60)
        try:
            stream_id = (await _live_stream(http, channel))["id"]
            await eventually(lambda: _listed_segments(http, stream_id, 2), within=30)
            client, ended = await _viewer_socket(second.base, stream_id)
            # The first node heartbeats: the second never touches its stream.
            await asyncio.sleep(float(NODE_SETTINGS["STAGECAST_MEDIA_NODE_STALE_SECONDS"]) * 2)
            assert (await http.get(f"/api/v1/streams/{stream_id}")).json()["status"] == "live"
            assert publisher.returncode is None
            before = _hashes(cluster.media, stream_id)
            first.kill9()
            # Once its heartbeat is stale, the second node ends it from what it stored.
            await eventually(lambda: _status_is(http, stream_id, "ended"), within=30)
            await eventually(lambda: _truthy(ended), within=10)
            assert ended[0]["payload"]["stream_id"] == stream_id
            await client.disconnect()
        finally:
            await _stop(publisher)
        await _check_ended_from_storage(http, second.base, stream_id, before, cluster.media)


async def test_deleting_on_one_node_ends_the_broadcast_on_the_node_that_runs_it(
    cluster: Cluster,
) -> None:
    first, rtmp = cluster.node()
    second, _ = cluster.node()
    first.start()
    second.start()
    async with httpx.AsyncClient(base_url=second.base, timeout=30) as http:
        creator, channel, key = await _creator(http)
        publisher = await _publisher(rtmp, key, seconds=60)
        try:
            stream_id = (await _live_stream(http, channel))["id"]
            await eventually(lambda: _listed_segments(http, stream_id, 2), within=30)
            answer = await http.delete(f"/api/v1/streams/{stream_id}", headers=creator.headers)
            if not TEST_REDIS_URL:
                # Without Redis the nodes cannot reach each other: refused, nothing changed.
                assert answer.status_code == 503, answer.text
                assert answer.json()["code"] == "STREAM_ON_ANOTHER_NODE"
                assert publisher.returncode is None
                return
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "ended"
            # The first node cut its publisher and closed the recording before the answer.
            await asyncio.wait_for(publisher.wait(), 10)
            playlist = (await http.get(f"/hls/{stream_id}/source/index.m3u8")).text
            assert playlist.rstrip().endswith("#EXT-X-ENDLIST")
            vods = (await http.get(f"/api/v1/channels/{channel['id']}/vods")).json()["data"]
            assert [v["stream_id"] for v in vods] == [stream_id]
        finally:
            await _stop(publisher)


async def _status_is(http: httpx.AsyncClient, stream_id: str, wanted: str) -> bool:
    return bool((await http.get(f"/api/v1/streams/{stream_id}")).json()["status"] == wanted)


async def _truthy(values: list[Any]) -> bool:
    return bool(values)
