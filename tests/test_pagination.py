"""Every list pages three ways: our cursor, seed 000's `?page=&limit=` and seed 003's
`?limit=&offset=`; offset pages carry an exact `total` that an index answers."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.engine import Connection

from stagecast.accounts.models import User
from stagecast.channels import service as channels
from stagecast.chat import service as chat
from stagecast.notifications import service as notifications
from stagecast.runtime import Runtime
from stagecast.streams import service as streams
from stagecast.vods import service as vods
from tests.factories import (
    Account,
    go_live,
    login,
    make_admin,
    make_channel,
    make_stream,
    register,
)
from tests.money.test_wallet import buy

# Query parameters some lists require, by path.
REQUIRED_QUERY = {"/api/v1/search": {"q": "pager"}}
# Filters that change a list's WHERE clause: each is paged (and its count planned) too.
FILTERS: dict[str, list[dict[str, Any]]] = {
    "/api/v1/admin/users": [{"role": "admin"}, {"status": "active"}],
    "/api/v1/notifications": [{"unread": "true"}],
    "/api/v1/channels/{channel_id}/streams": [{"status": "ended"}],
    "/api/v1/live/streams": [{"is_live": "true"}],
    "/api/v1/browse": [{"sort": "newest"}, {"category": "gaming"}, {"language": "en"}],
    "/api/v1/search": [{"q": "pager", "type": "channel"}],
}


def page_paths(document: dict[str, Any]) -> Iterator[str]:
    """Every GET operation of the OpenAPI document that answers a `Page`."""
    for path, item in document["paths"].items():
        answer = item.get("get", {}).get("responses", {}).get("200", {})
        schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
        if schema.get("$ref", "").startswith("#/components/schemas/Page_"):
            required = {
                p["name"] for p in item["get"].get("parameters", [])
                if p["in"] == "query" and p.get("required")
            }  # fmt: skip
            assert required <= set(REQUIRED_QUERY.get(path, {})), (path, required)
            yield path


class World:
    """An admin who owns a channel with a bit of everything, so that most lists have more
    than one item and page 2 is not page 1."""

    def __init__(
        self, owner: Account, channel: dict[str, Any], stream_id: str, vod_id: str
    ) -> None:
        self.owner, self.channel, self.stream_id = owner, channel, stream_id
        self.vod_id = vod_id

    def path(self, template: str) -> str:
        values = {
            "channel_id": self.channel["slug"],
            "channel_ref": self.channel["slug"],
            "stream_id": self.stream_id,
            "user_ref": self.owner.username,
            "vod_id": self.vod_id,
        }
        names = re.findall(r"{(\w+)}", template)
        missing = [n for n in names if n not in values]
        assert not missing, f"teach World.path about {missing} for {template}"
        return template.format(**{n: values[n] for n in names})


async def build_world(client: httpx.AsyncClient, app: FastAPI) -> World:
    runtime: Runtime = app.state.runtime
    owner = await make_admin(client, app)
    await login(client, owner)  # a second session
    channel = await make_channel(client, owner, name="Pager channel")
    for n in range(3):
        created = await client.post(
            "/api/v1/developer/api-keys", json={"name": f"key {n}"}, headers=owner.headers
        )
        assert created.status_code == 201, created.text
    ended = [await make_stream(client, owner, title=f"Pager old {n}") for n in range(2)]
    fans = [await register(client, username=f"pagerfan{uuid.uuid4().hex[:6]}") for _ in range(3)]
    for fan in fans:
        assert (
            await client.post(f"/api/v1/channels/{channel['slug']}/follow", headers=fan.headers)
        ).status_code == 200
        assert (
            await client.post(f"/api/v1/users/{owner.username}/follow", headers=fan.headers)
        ).status_code == 200
        fan_channel = await make_channel(client, fan, name="Pager fan channel")
        await go_live(app, fan_channel["slug"])
        assert (
            await client.post(f"/api/v1/users/{fan.username}/follow", headers=owner.headers)
        ).status_code == 200
        assert (
            await client.post(
                f"/api/v1/channels/{fan_channel['slug']}/follow", headers=owner.headers
            )
        ).status_code == 200
    stream_id = await go_live(app, channel["slug"])
    for fan in fans[:2]:
        await buy(client, fan, 1000)
        tipped = await client.post(
            f"/api/v1/streams/{stream_id}/tips", json={"tokens": 10}, headers=fan.headers
        )
        assert tipped.status_code == 201, tipped.text
        subscribed = await client.post(
            "/api/v1/subscriptions", json={"channel_id": channel["id"]}, headers=fan.headers
        )
        assert subscribed.status_code == 201, subscribed.text
    await buy(client, owner, 1000)
    await buy(client, owner, 1000)
    async with runtime.db.session() as session, session.begin():
        owner_user = await session.get_one(User, uuid.UUID(owner.id))
        own = await channels.get_channel(session, channel["slug"])
        for n in range(3):
            await notifications.notify(
                session, user_id=owner_user.id, kind="test.pager", payload={"n": n}
            )
            await chat.send_message(
                session, user=owner_user, channel=own, stream_id=uuid.UUID(stream_id),
                raw=f"pager message {n}", reply_to=None,
            )  # fmt: skip
        for old in ended:
            stream = await streams.get_stream(session, uuid.UUID(old["id"]))
            await vods.record_vod(
                session, stream=stream, duration_seconds=10, size_bytes=1000,
                playlist_key=f"vods/{old['id']}/index.m3u8", thumbnail_key=None, renditions=[],
            )  # fmt: skip
        # The live stream's recording so far: its chat replays the messages above.
        live = await streams.get_stream(session, uuid.UUID(stream_id))
        vod = await vods.record_vod(
            session, stream=live, duration_seconds=60, size_bytes=1000,
            playlist_key=f"live/{stream_id}/master.m3u8", thumbnail_key=None, renditions=[],
        )  # fmt: skip
        vod_id = str(vod.id)
    for fan in fans[:2]:
        banned = await client.post(
            f"/api/v1/channels/{channel['slug']}/bans",
            json={"username": fan.username, "duration_seconds": 600},
            headers=owner.headers,
        )
        assert banned.status_code in {200, 201}, banned.text
    return World(owner, channel, stream_id, vod_id)


class CountPlans:
    """The `count(*)` statements a request sends (SQLite's plan of each is read after)."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []

    def __call__(
        self, _conn: Connection, _cursor: Any, statement: str, parameters: Any, *_args: Any
    ) -> None:
        if statement.lstrip().lower().startswith("select count(*)"):
            self.statements.append((statement, parameters))


async def get(client: httpx.AsyncClient, world: World, path: str, **query: Any) -> Any:
    answer = await client.get(path, params=query, headers=world.owner.headers)
    assert answer.status_code == 200, (path, query, answer.text)
    return answer.json()


async def walk_cursor(
    client: httpx.AsyncClient, world: World, path: str, base: dict[str, Any]
) -> list[Any]:
    """Every item of a list, two at a time by cursor (the order the other ways must match)."""
    items: list[Any] = []
    cursor = None
    for _ in range(50):
        page = await get(
            client, world, path, **base, limit=2, **({"cursor": cursor} if cursor else {})
        )
        assert "total" not in page
        assert "hasMore" not in page
        assert "page" not in page
        items += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            return items
    raise AssertionError(f"{path} never ended")


def same(items: list[Any]) -> list[str]:
    return [json.dumps(item, sort_keys=True) for item in items]


async def test_every_list_pages_by_page_and_offset_with_exact_totals(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    world = await build_world(client, app)
    templates = list(page_paths((await client.get("/openapi.json")).json()))
    assert len(templates) >= 20, templates
    runtime: Runtime = app.state.runtime
    plans = CountPlans()
    event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", plans)
    several = []
    try:
        lists = [
            (each, query)
            for each in templates
            for query in [REQUIRED_QUERY.get(each, {}), *FILTERS.get(each, [])]
        ]
        for template, base in lists:
            path = world.path(template)
            everything = await walk_cursor(client, world, path, base)
            if len(everything) > 1:
                several.append(template)
            by_page: list[Any] = []
            for number in range(1, 60):
                page = await get(client, world, path, **base, page=number, limit=2)
                assert page["total"] == len(everything), path
                assert (page["page"], page["limit"], page["offset"]) == (number, 2, 2 * number - 2)
                assert page["hasMore"] is page["has_more"] is (2 * number < len(everything)), path
                assert (page["next_cursor"] is not None) is page["hasMore"]
                by_page += page["data"]
                if not page["hasMore"]:
                    break
            assert same(by_page) == same(everything), path
            beyond = await get(client, world, path, **base, page=number + 1, limit=2)
            assert (beyond["data"], beyond["total"], beyond["hasMore"]) == (
                [],
                len(everything),
                False,
            )
            shifted = await get(client, world, path, **base, offset=1, limit=2)
            assert same(shifted["data"]) == same(everything[1:3]), path
            assert shifted["total"] == len(everything)
            assert "page" not in shifted
            assert shifted["hasMore"] is (len(everything) > 3)
            if shifted["next_cursor"]:  # an offset page's cursor goes on where it stopped
                after = await get(
                    client, world, path, **base, limit=2, cursor=shifted["next_cursor"]
                )
                assert same(after["data"]) == same(everything[3:5]), path
    finally:
        event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", plans)
    # Lists that had several items, so that page 2 really differed from page 1.
    assert len(several) >= 18, sorted(set(templates) - set(several))
    if runtime.db.dialect == "sqlite":
        await check_counts_use_indexes(runtime, plans.statements)


async def check_counts_use_indexes(runtime: Runtime, statements: list[tuple[str, Any]]) -> None:
    """Each count is a search of an index; only a list without any filter (all users) may
    scan, and then a covering index rather than the table."""
    assert statements
    async with runtime.db.session() as session:
        connection = await session.connection()
        for statement, parameters in {(s, tuple(p)) for s, p in statements}:
            plan = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            details = [str(row[-1]) for row in plan.all()]
            scans = [d for d in details if d.startswith("SCAN")]
            if " WHERE " not in statement:
                scans = [d for d in scans if "COVERING INDEX" not in d]
            assert not scans, (statement, details)


@pytest.mark.parametrize(
    "query", ["page=1&cursor=abc", "page=1&offset=0", "offset=2&cursor=abc", "page=0", "page=x",
              "offset=-1", "page=1001", "offset=100001", "page=1&limit=0", "page=1&limit=101"],
)  # fmt: skip
async def test_bad_paging_is_a_422_that_names_the_parameters(
    client: httpx.AsyncClient, query: str
) -> None:
    answer = await client.get(f"/api/v1/categories?{query}")
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["code"] == "VALIDATION_ERROR"
    named = {error["field"] for error in problem["errors"]}
    given = {part.split("=")[0] for part in query.split("&")}
    assert named, problem
    assert named <= given, problem


async def test_seed_000_page_two_is_page_two(client: httpx.AsyncClient, app: FastAPI) -> None:
    """Seed 000's own query string, `GET /api/resource?page=1&limit=20`, on a real list."""
    owner = await register(client)
    channel = await make_channel(client, owner)
    fans = [await register(client) for _ in range(3)]
    for fan in fans:
        await client.post(f"/api/v1/channels/{channel['slug']}/follow", headers=fan.headers)
    path = f"/api/v1/channels/{channel['slug']}/followers"
    first = (await client.get(f"{path}?page=1&limit=20")).json()
    assert {k: first[k] for k in ("total", "page", "limit", "hasMore")} == {
        "total": 3, "page": 1, "limit": 20, "hasMore": False,
    }  # fmt: skip
    assert [f["user"]["username"] for f in first["data"]] == [f.username for f in reversed(fans)]
    one = (await client.get(f"{path}?page=1&limit=2")).json()
    two = (await client.get(f"{path}?page=2&limit=2")).json()
    assert [f["user"]["username"] for f in two["data"]] == [fans[0].username]
    assert one["hasMore"] is True
    assert two["hasMore"] is False
    assert one["data"] != two["data"]
    cursor_page = (await client.get(f"{path}?limit=2")).json()
    assert set(cursor_page) == {"data", "next_cursor", "has_more"}  # our lists are unchanged
