"""Filing reports: the three routes, one model; duplicates merge; what cannot be reported."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import func, select

from stagecast.app import create_app
from stagecast.config import RateLimits
from stagecast.db.engine import Database
from stagecast.moderation.models import ModerationCase, Report
from stagecast.runtime import Runtime
from tests.conftest import make_settings
from tests.factories import register
from tests.moderation.conftest import (
    make_clip,
    make_creator,
    make_message,
    make_vod,
    report,
)


async def _counts(app: FastAPI) -> tuple[int, int]:
    runtime: Runtime = app.state.runtime
    async with runtime.db.read_session() as session, session.begin():
        reports = await session.scalar(select(func.count()).select_from(Report))
        cases = await session.scalar(select(func.count()).select_from(ModerationCase))
    return int(reports or 0), int(cases or 0)


async def test_seed_003_report_and_its_answer(app: FastAPI, client: httpx.AsyncClient) -> None:
    creator = await make_creator(app, client)
    viewer = await register(client)
    # Seed 003's body exactly: content_type, content_id, reason.
    answer = await client.post(
        "/api/v1/reports",
        json={"content_type": "user", "content_id": creator.account.id, "reason": "harassment"},
        headers=viewer.headers,
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["content_type"] == "user"
    assert body["content_id"] == creator.account.id
    assert (body["reason"], body["status"], body["count"]) == ("harassment", "pending", 1)


async def test_seed_002_route_takes_the_same_body(app: FastAPI, client: httpx.AsyncClient) -> None:
    creator = await make_creator(app, client)
    viewer = await register(client)
    body = {
        "content_type": "stream",
        "content_id": creator.stream_id,
        "reason": "violence",
        "details": "at 12:00",
    }
    first = await client.post("/api/v1/moderation/report", json=body, headers=viewer.headers)
    assert first.status_code == 201, first.text
    # The same reporter through the other route: the same report, merged.
    again = await client.post("/api/v1/reports", json=body, headers=viewer.headers)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["count"] == 2
    assert again.json()["details"] == "at 12:00"


@pytest.mark.parametrize("kind", ["user", "stream", "vod", "clip", "chat_message", "channel"])
async def test_every_content_type_reports_into_one_case(
    app: FastAPI, client: httpx.AsyncClient, kind: str
) -> None:
    creator = await make_creator(app, client)
    author = await register(client)
    targets = {
        "user": lambda: _value(creator.account.id),
        "stream": lambda: _value(creator.stream_id),
        "channel": lambda: _value(creator.channel["id"]),
        "vod": lambda: make_vod(app, creator),
        "clip": lambda: make_clip(app, creator, author),
        "chat_message": lambda: make_message(app, creator, author, "rude words"),
    }
    content_id = await targets[kind]()
    reporters = [await register(client) for _ in range(3)]
    before = await _counts(app)
    for reporter in reporters:
        answer = await report(client, reporter, kind, content_id, reason="hate")
        assert answer.status_code == 201, answer.text
    assert (await report(client, reporters[0], kind, content_id)).status_code == 200
    reports, cases = await _counts(app)
    assert (reports - before[0], cases - before[1]) == (3, 1)


async def _value(value: str) -> str:
    return value


async def test_vod_route_is_the_same_model(app: FastAPI, client: httpx.AsyncClient) -> None:
    creator = await make_creator(app, client)
    vod_id = await make_vod(app, creator)
    viewer, other = await register(client), await register(client)
    old = await client.post(
        f"/api/v1/vods/{vod_id}/report", json={"reason": "copyright"}, headers=viewer.headers
    )
    assert old.status_code == 201, old.text
    merged = await report(client, viewer, "vod", vod_id, reason="copyright")
    assert merged.status_code == 200
    assert merged.json()["id"] == old.json()["id"]
    assert (await report(client, other, "vod", vod_id)).status_code == 201
    assert (await _counts(app))[1] == 1  # one case for the recording


async def test_what_cannot_be_reported_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    creator = await make_creator(app, client)
    message_id = await make_message(app, creator, creator.account, "mine")
    viewer = await register(client)
    before = await _counts(app)
    missing = await report(client, viewer, "vod", str(uuid.UUID(int=7)))
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["code"] == "REPORTED_CONTENT_NOT_FOUND"
    for kind, content_id in [
        ("user", creator.account.id),
        ("channel", creator.channel["id"]),
        ("stream", creator.stream_id),
        ("chat_message", message_id),
    ]:
        own = await report(client, creator.account, kind, content_id)
        assert own.status_code == 422, own.text
        assert own.json()["code"] == "CANNOT_REPORT_OWN_CONTENT"
    unknown = await report(client, viewer, "user", creator.account.id, reason="boring")
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "VALIDATION_ERROR"
    bad_type = await report(client, viewer, "track", creator.account.id)
    assert bad_type.status_code == 422
    too_long = await report(client, viewer, "user", creator.account.id, details="x" * 2001)
    assert too_long.status_code == 422
    anonymous = await client.post(
        "/api/v1/reports",
        json={"content_type": "user", "content_id": creator.account.id, "reason": "spam"},
    )
    assert anonymous.status_code == 401
    assert await _counts(app) == before


async def test_reports_are_rate_limited(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(
        tmp_path, database_url, rate_limits=RateLimits(auth="1000/minute", reports="2/minute")
    )
    application = create_app(settings, database=database)
    async with (
        LifespanManager(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://testserver"
        ) as http,
    ):
        creator = await make_creator(application, http)
        viewer = await register(http)
        for _ in range(2):
            assert (await report(http, viewer, "user", creator.account.id)).status_code in (
                200,
                201,
            )
        limited = await report(http, viewer, "user", creator.account.id)
        assert limited.status_code == 429
        assert limited.json()["code"] == "RATE_LIMIT_EXCEEDED"
        assert "Retry-After" in limited.headers
