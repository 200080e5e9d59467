"""Browse, search, recommendations, categories and tags: right results, right order."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.factories import (
    Account,
    end_live,
    go_live,
    make_admin,
    make_channel,
    make_stream,
    register,
)


async def _live_channel(
    client: httpx.AsyncClient,
    app: FastAPI,
    *,
    title: str,
    viewers: int,
    category: str | None = None,
    tags: list[str] | None = None,
    language: str = "en",
    slug: str | None = None,
    name: str | None = None,
) -> tuple[Account, str]:
    owner = await register(client)
    channel = await make_channel(
        client, owner, **({"slug": slug} if slug else {}), **({"name": name} if name else {})
    )
    await make_stream(
        client, owner, title=title, category=category, tags=tags or [], language=language
    )
    return owner, await go_live(app, channel["slug"], viewers=viewers)


async def test_browse_sorts_filters_and_paginates(client: httpx.AsyncClient, app: FastAPI) -> None:
    _, quiet = await _live_channel(
        client, app, title="Quiet", viewers=3, category="music", tags=["lofi"]
    )
    _, busy = await _live_channel(
        client, app, title="Busy", viewers=300, category="gaming", tags=["speedrun", "retro"]
    )
    _, middle = await _live_channel(
        client, app, title="Middle", viewers=40, category="gaming", tags=["retro"], language="de"
    )
    _, ended = await _live_channel(client, app, title="Over", viewers=999)
    await end_live(app, ended)
    scheduled_owner = await register(client)
    await make_stream(client, scheduled_owner, title="Not yet")

    by_viewers = (await client.get("/api/v1/browse")).json()["data"]
    assert [s["id"] for s in by_viewers] == [busy, middle, quiet]
    newest = (await client.get("/api/v1/browse?sort=newest")).json()["data"]
    assert [s["id"] for s in newest] == [middle, busy, quiet]
    gaming = (await client.get("/api/v1/browse?category=gaming")).json()["data"]
    assert [s["id"] for s in gaming] == [busy, middle]
    retro = (await client.get("/api/v1/browse?tags=retro&tags=speedrun")).json()["data"]
    assert [s["id"] for s in retro] == [busy]
    german = (await client.get("/api/v1/browse?language=de")).json()["data"]
    assert [s["id"] for s in german] == [middle]

    first = (await client.get("/api/v1/browse?limit=2")).json()
    assert [s["id"] for s in first["data"]] == [busy, middle]
    assert first["has_more"] is True
    rest = (await client.get(f"/api/v1/browse?limit=2&cursor={first['next_cursor']}")).json()
    assert [s["id"] for s in rest["data"]] == [quiet]
    assert rest["has_more"] is False
    assert (await client.get("/api/v1/browse?sort=random")).status_code == 422


async def test_search_ranks_prefix_typo_and_kinds(client: httpx.AsyncClient, app: FastAPI) -> None:
    _, minecraft = await _live_channel(
        client, app, title="Minecraft hardcore day 100", viewers=10, slug="blockbuilder"
    )
    _, speedrun = await _live_channel(
        client, app, title="Speedrunning Mario", viewers=50, tags=["minecraft"]
    )
    _, unrelated = await _live_channel(client, app, title="Cooking pasta", viewers=70)
    alice = await register(client, username="minecraft_mike")

    exact = (await client.get("/api/v1/search?q=minecraft")).json()["data"]
    kinds = [
        (r["type"], (r.get("stream") or r.get("user") or r.get("channel"))["id"]) for r in exact
    ]
    # A title match beats a tag (body) match; the user whose name matches is found too.
    assert kinds.index(("stream", minecraft)) < kinds.index(("stream", speedrun))
    assert ("user", alice.id) in kinds
    assert all(identifier != unrelated for _, identifier in kinds)
    assert exact == sorted(exact, key=lambda r: -r["score"])

    prefix = (await client.get("/api/v1/search?q=minec&type=stream")).json()["data"]
    assert prefix[0]["stream"]["id"] == minecraft
    typo = (await client.get("/api/v1/search?q=minecarft&type=stream")).json()["data"]
    assert typo[0]["stream"]["id"] == minecraft
    channel = (await client.get("/api/v1/search?q=blockbuilder&type=channel")).json()["data"]
    assert channel[0]["channel"]["slug"] == "blockbuilder"
    assert channel[0]["channel"]["is_live"] is True
    nothing = (await client.get("/api/v1/search?q=zzzzqqq")).json()
    assert nothing == {"data": [], "next_cursor": None, "has_more": False}
    assert (await client.get("/api/v1/search?q=")).status_code == 422
    hostile = await client.get("/api/v1/search", params={"q": "\"'; DROP TABLE streams;-- *"})
    assert hostile.status_code == 200
    assert (await client.get(f"/api/v1/streams/{minecraft}")).status_code == 200


async def test_ended_streams_leave_search(client: httpx.AsyncClient, app: FastAPI) -> None:
    _, stream_id = await _live_channel(client, app, title="Vanishing act", viewers=1)
    assert (await client.get("/api/v1/search?q=vanishing&type=stream")).json()["data"]
    await end_live(app, stream_id)
    assert (await client.get("/api/v1/search?q=vanishing&type=stream")).json()["data"] == []


async def test_search_pages(client: httpx.AsyncClient) -> None:
    for index in range(5):
        await register(client, username=f"pager_person_{index}")
    first = (await client.get("/api/v1/search?q=pager&type=user&limit=3")).json()
    assert len(first["data"]) == 3
    assert first["has_more"] is True
    second = (
        await client.get(f"/api/v1/search?q=pager&type=user&limit=3&cursor={first['next_cursor']}")
    ).json()
    assert len(second["data"]) == 2
    ids = {r["user"]["id"] for r in first["data"] + second["data"]}
    assert len(ids) == 5
    assert (await client.get("/api/v1/search?q=pager&cursor=@@@")).status_code == 422


async def test_recommended_puts_followed_channels_first(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    _, followed = await _live_channel(client, app, title="Small friend", viewers=2, category="art")
    _, same_category = await _live_channel(client, app, title="Art too", viewers=5, category="art")
    _, popular = await _live_channel(client, app, title="Huge", viewers=5000, category="gaming")
    viewer = await register(client)
    channel_id = (await client.get(f"/api/v1/streams/{followed}")).json()["channel"]["id"]
    await client.post(f"/api/v1/channels/{channel_id}/follow", headers=viewer.headers)

    mine = (await client.get("/api/v1/recommended", headers=viewer.headers)).json()["data"]
    assert [s["id"] for s in mine][:3] == [followed, same_category, popular]
    anonymous = (await client.get("/api/v1/recommended")).json()["data"]
    assert [s["id"] for s in anonymous][:3] == [popular, same_category, followed]


async def test_categories_and_tag_suggestions(client: httpx.AsyncClient, app: FastAPI) -> None:
    await _live_channel(
        client, app, title="Synth jam", viewers=20, category="music", tags=["synthwave", "synth"]
    )
    await _live_channel(
        client, app, title="Synth talk", viewers=5, category="music", tags=["synth"]
    )
    categories = (await client.get("/api/v1/categories")).json()["data"]
    assert categories[0] == {"slug": "music", "name": "Music", "live_streams": 2, "viewers": 25}
    assert {c["slug"] for c in categories} >= {"gaming", "art", "just-chatting"}
    suggestions = (await client.get("/api/v1/tags/suggest?q=SYN")).json()["suggestions"]
    assert suggestions == ["synth", "synthwave"]  # most used first
    assert (await client.get("/api/v1/tags/suggest?q=%25")).json()["suggestions"] == []


async def test_only_admins_add_categories(client: httpx.AsyncClient, app: FastAPI) -> None:
    viewer = await register(client)
    admin = await make_admin(client, app)
    body = {"slug": "chess", "name": "Chess"}
    assert (
        await client.post("/api/v1/categories", json=body, headers=viewer.headers)
    ).status_code == 403
    created = await client.post("/api/v1/categories", json=body, headers=admin.headers)
    assert created.status_code == 201
    duplicate = await client.post("/api/v1/categories", json=body, headers=admin.headers)
    assert duplicate.status_code == 409
    assert "chess" in {c["slug"] for c in (await client.get("/api/v1/categories")).json()["data"]}


async def test_categories_and_recommendations_paginate(client: httpx.AsyncClient) -> None:
    first = (await client.get("/api/v1/categories?limit=10")).json()
    assert len(first["data"]) == 10
    assert first["has_more"] is True
    rest = (await client.get(f"/api/v1/categories?limit=10&cursor={first['next_cursor']}")).json()
    slugs = [c["slug"] for c in first["data"] + rest["data"]]
    assert len(slugs) == len(set(slugs)) >= 15
    assert rest["has_more"] is False
    empty = (await client.get("/api/v1/recommended")).json()
    assert empty == {"data": [], "next_cursor": None, "has_more": False}
