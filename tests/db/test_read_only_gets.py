"""Every GET route runs read-only: no write transaction (SQLite's BEGIN IMMEDIATE, a
PostgreSQL transaction that is not READ ONLY) and no INSERT, UPDATE or DELETE."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from stagecast.accounts.models import Role
from tests.factories import go_live, make_channel, make_stream, register, set_role
from tests.realtime.conftest import LiveServer
from tests.statements import StatementLog

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")
# GETs of seed 003 that make what they show on first use (your channel and stream key): in
# a write transaction of their own, once; the request's own transaction stays read-only.
MADE_ON_FIRST_USE = frozenset({"/api/v1/live/streams/me", "/api/v1/live/streams/me/key"})
WEB_APP_NOT_BUILT = "WEB_APP_NOT_BUILT"  # the web app's pages answer this without `make web`


def get_routes(routes: Iterable[Any]) -> Iterator[str]:
    """The paths of every GET route of an app, included routers' too."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:  # FastAPI's included router
            for context in contexts():
                if "GET" in (context.methods or ()):
                    yield context.path
        elif "GET" in (getattr(route, "methods", None) or ()):
            yield route.path


async def test_no_get_route_opens_a_write_transaction(
    live: LiveServer, statements: StatementLog
) -> None:
    admin = await register(live.http)
    await set_role(live.app, admin, Role.ADMIN)
    channel = await make_channel(live.http, admin)
    await make_stream(live.http, admin)
    stream_id = await go_live(live.app, channel["slug"])
    values = {
        "channel_id": channel["id"],
        "channel_ref": channel["id"],
        "slug": channel["slug"],
        "stream_id": stream_id,
        "user_id": admin.id,
        "user_ref": admin.id,
        "path": "index.html",
        "name": "index.m3u8",
    }
    paths = sorted(set(get_routes(live.app.routes)))
    assert len(paths) > 50  # the walk found the app's routes, not an empty list
    answered: dict[str, int] = {}
    problems: list[str] = []
    for template in paths:
        path = _PARAM.sub(lambda m: values.get(m.group(1), str(uuid.uuid4())), template)
        for attempt in ("first", "again"):
            with statements.capture() as sent:
                response = await live.http.get(path, headers=admin.headers)
            answered[template] = response.status_code
            if response.status_code >= 500 and not _unbuilt_web_app(response):
                problems.append(f"{template}: {response.status_code} {response.text[:200]}")
            first_use = attempt == "first" and template in MADE_ON_FIRST_USE
            for statement in sent:
                if statement.mode != "write" and statement.writes:
                    problems.append(f"{template}: wrote outside a write transaction")
                elif statement.mode == "write" and not first_use:
                    problems.append(f"{template} ({attempt}): {statement.sql[:120]}")
    assert not problems, "\n".join(problems)
    # Most routes were reached with what they need, not only refused.
    assert sum(1 for status in answered.values() if status == 200) > len(paths) // 2, answered


def _unbuilt_web_app(response: Any) -> bool:
    return bool(
        response.status_code == 503
        and response.headers.get("content-type", "").startswith("application/problem+json")
        and response.json().get("code") == WEB_APP_NOT_BUILT
    )
