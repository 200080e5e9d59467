"""A null where a value was expected never stores an invalid object, and stored data that
fails validation never takes a channel (or a user) down on read."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from stagecast.accounts.models import User
from stagecast.accounts.schemas import Preferences
from stagecast.channels.models import Channel
from stagecast.channels.schemas import ChannelSettings
from stagecast.clips.models import Clip
from stagecast.runtime import Runtime
from stagecast.streams import service as streams
from stagecast.vods import service as vods
from tests.factories import Account, make_admin, make_channel, make_stream, register


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _nullable(schema: dict[str, Any]) -> bool:
    return any(option.get("type") == "null" for option in schema.get("anyOf", []))


def _object_of(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any] | None:
    for option in [schema, *schema.get("anyOf", [])]:
        resolved = _resolve(spec, option)
        if resolved.get("type") == "object" and "properties" in resolved:
            return resolved
    return None


def null_bodies(spec: dict[str, Any], body: dict[str, Any]) -> list[dict[str, Any]]:
    """One body per nullable field, that field null; nested objects' fields too."""
    bodies: list[dict[str, Any]] = []
    for name, field in body.get("properties", {}).items():
        if _nullable(field):
            bodies.append({name: None})
        nested = _object_of(spec, field)
        if nested is not None:
            bodies += [{name: inner} for inner in null_bodies(spec, nested)]
    return bodies


def _patch_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, methods in spec["paths"].items():
        for method in ("patch", "put"):
            operation = methods.get(method)
            if operation is None or "requestBody" not in operation:
                continue
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            found.append((method, path, _resolve(spec, schema)))
    return found


async def recording_and_clip(app: FastAPI, owner: Account, stream_id: str) -> tuple[str, str]:
    """A VOD of the stream, and a clip of it (rows only: no media is read by a PATCH of nulls)."""
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        stream = await streams.get_stream(session, uuid.UUID(stream_id))
        vod = await vods.record_vod(
            session, stream=stream, duration_seconds=60, size_bytes=1000,
            playlist_key=f"live/{stream_id}/master.m3u8", thumbnail_key=None, renditions=[],
        )  # fmt: skip
        clip = Clip(
            stream_id=stream.id, channel_id=stream.channel_id, vod_id=vod.id,
            creator_id=uuid.UUID(owner.id), title="A clip", source_start=0, source_end=30,
            start=0, end=30, segments=[], mp4_state="ready",
        )  # fmt: skip
        session.add(clip)
        await session.flush()
        return str(vod.id), str(clip.id)


async def tournament_match(client: httpx.AsyncClient, organiser: Account) -> tuple[str, str]:
    """A started tournament of two players, and its one match."""
    starts_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    created = await client.post(
        "/api/v1/tournaments",
        json={"name": "Nulls cup", "category": "chess", "max_participants": 2,
              "starts_at": starts_at},
        headers=organiser.headers,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    tournament = created.json()
    for _ in range(2):
        player = await register(client)
        joined = await client.post(
            f"/api/v1/tournaments/{tournament['id']}/join", headers=player.headers
        )
        assert joined.status_code == 200, joined.text
    started = await client.post(
        f"/api/v1/tournaments/{tournament['id']}/start", headers=organiser.headers
    )
    assert started.status_code == 200, started.text
    return tournament["id"], started.json()["rounds"][0]["matches"][0]["id"]


async def test_every_patch_route_takes_nulls_and_everything_reads_back(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    admin = await make_admin(client, app)
    channel = await make_channel(client, owner)
    stream = await make_stream(client, owner)
    vod_id, clip_id = await recording_and_clip(app, owner, stream["id"])
    tournament_id, match_id = await tournament_match(client, owner)
    values = {
        "channel_id": channel["id"],
        "channel_ref": channel["id"],
        "user_id": owner.id,
        "stream_id": stream["id"],
        "level": "1",
        "vod_id": vod_id,
        "clip_id": clip_id,
        "tournament_id": tournament_id,
        "match_id": match_id,
        "name": "clips",
    }
    spec = (await client.get("/openapi.json")).json()
    operations = _patch_operations(spec)
    assert len(operations) >= 7, [p for _, p, _ in operations]  # the walk covers them all
    tried: list[tuple[str, dict[str, Any], int]] = []
    for method, template, body in operations:
        path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
        headers = admin.headers if "/admin/" in path else owner.headers
        for nulls in null_bodies(spec, body):
            answer = await client.request(method, path, json=nulls, headers=headers)
            tried.append((f"{method.upper()} {template}", nulls, answer.status_code))
            assert answer.status_code < 500, (method, template, nulls, answer.text)
            if answer.status_code >= 400:
                assert answer.json()["code"] in {"VALIDATION_ERROR", "STREAM_NOT_LIVE"}, (
                    template,
                    nulls,
                    answer.text,
                )
    assert any(nulls == {"chat": {"slow_mode_seconds": None}} for _, nulls, _ in tried)

    # Everything reads back, and what the server itself reads (chat, ingest) still loads.
    for _method, template, _ in operations:
        if "get" in spec["paths"][template]:
            path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
            headers = admin.headers if "/admin/" in path else owner.headers
            answer = await client.get(path, headers=headers)
            assert answer.status_code == 200, (template, answer.text)
    settings = (
        await client.get(f"/api/v1/channels/{channel['id']}/settings", headers=owner.headers)
    ).json()
    assert settings["chat"]["slow_mode_seconds"] == 0  # null reset it to its default
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session, session.begin():
        stored = await session.get_one(Channel, uuid.UUID(channel["id"]))
        # Nothing invalid was stored: the rows validate as they are, without repair.
        ChannelSettings.model_validate(
            {
                **(stored.settings or {}),
                "category": stored.category,
                "language": stored.language,
                "is_mature": stored.is_mature,
            }
        )
        user = await session.get_one(User, uuid.UUID(owner.id))
        Preferences.model_validate(user.preferences or {})
