"""What the moderation tests report: real rows of each content type, made as their domains do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from stagecast.accounts.models import Role
from stagecast.chat.models import ChatMessage
from stagecast.clips.models import Clip
from stagecast.runtime import Runtime
from stagecast.streams import service as streams
from stagecast.vods import service as vods
from tests.factories import Account, go_live, make_channel, register, set_role
from tests.realtime.conftest import live  # noqa: F401 (the fixture, for these tests)


@dataclass
class Creator:
    account: Account
    channel: dict[str, Any]
    stream_id: str


async def make_creator(app: FastAPI, client: httpx.AsyncClient) -> Creator:
    """A creator with a channel on air."""
    account = await register(client)
    channel = await make_channel(client, account)
    return Creator(account, channel, await go_live(app, channel["slug"]))


async def make_staff(client: httpx.AsyncClient, app: FastAPI, role: Role) -> Account:
    account = await register(client)
    await set_role(app, account, role)
    return account


async def make_vod(app: FastAPI, creator: Creator) -> str:
    """A recording row of the creator's stream (no media files: nothing here plays it)."""
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        stream = await streams.get_stream(session, uuid.UUID(creator.stream_id))
        vod = await vods.record_vod(
            session, stream=stream, duration_seconds=60, size_bytes=1000,
            playlist_key=f"live/{stream.id}/master.m3u8", thumbnail_key=None, renditions=[],
        )  # fmt: skip
        return str(vod.id)


async def make_clip(app: FastAPI, creator: Creator, clipper: Account) -> str:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        clip = Clip(
            stream_id=uuid.UUID(creator.stream_id), channel_id=uuid.UUID(creator.channel["id"]),
            creator_id=uuid.UUID(clipper.id), title="A clip", source_start=0, source_end=30,
            start=0, end=30, segments=[], mp4_state="ready",
        )  # fmt: skip
        session.add(clip)
        await session.flush()
        return str(clip.id)


async def make_message(app: FastAPI, creator: Creator, author: Account, body: str) -> str:
    """A chat message in the creator's live stream, stored as chat:send stores it."""
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        message = ChatMessage(
            channel_id=uuid.UUID(creator.channel["id"]),
            stream_id=uuid.UUID(creator.stream_id),
            user_id=uuid.UUID(author.id),
            body=body,
        )
        session.add(message)
        await session.flush()
        return str(message.id)


async def report(
    client: httpx.AsyncClient,
    reporter: Account,
    content_type: str,
    content_id: str,
    reason: str = "spam",
    **extra: Any,
) -> httpx.Response:
    return await client.post(
        "/api/v1/reports",
        json={"content_type": content_type, "content_id": content_id, "reason": reason, **extra},
        headers=reporter.headers,
    )


async def queue_item(
    client: httpx.AsyncClient, staff: Account, content_id: str, **query: str
) -> dict[str, Any]:
    """The queue item of one object (it must be listed)."""
    answer = await client.get(
        "/api/v1/moderation/queue", params={"limit": "100", **query}, headers=staff.headers
    )
    assert answer.status_code == 200, answer.text
    found = [i for i in answer.json()["items"] if i["content_id"] == content_id]
    assert len(found) == 1, answer.json()
    item: dict[str, Any] = found[0]
    return item


async def notifications_of(client: httpx.AsyncClient, account: Account) -> list[dict[str, Any]]:
    answer = await client.get("/api/v1/notifications", headers=account.headers)
    assert answer.status_code == 200, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    return data
