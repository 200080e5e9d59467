"""Duplicate reports sent at once, to a real server on a committed database: one report, every
one of them counted."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from stagecast.moderation.models import Report
from stagecast.runtime import Runtime
from tests.factories import register
from tests.realtime.conftest import LiveServer
from tests.vods.conftest import make_recording


async def test_duplicate_reports_at_once_merge_into_one(live: LiveServer) -> None:
    recording = await make_recording(live.app, live.http, seconds=2)
    viewer = await register(live.http)
    answers = await asyncio.gather(
        *(
            live.http.post(
                f"/api/v1/vods/{recording.id}/report",
                json={"reason": "spam"},
                headers=viewer.headers,
            )
            for _ in range(6)
        )
    )
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    runtime: Runtime = live.app.state.runtime
    async with runtime.db.read_session() as session, session.begin():
        reports = (await session.scalars(select(Report))).all()
    mine = [r for r in reports if str(r.content_id) == recording.id]
    assert [(r.count, str(r.reporter_id)) for r in mine] == [(6, viewer.id)]
