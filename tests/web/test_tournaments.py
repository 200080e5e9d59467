"""Tournaments and leaderboards in the browser: a bracket advances after a result, for the
organiser who reports it and for a viewer watching the page; a channel's top supporters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Page, expect

from tests.factories import PASSWORD, Account, go_live, make_channel
from tests.leaderboards.test_leaderboards import fund
from tests.realtime.conftest import LiveServer
from tests.web.conftest import Browsing


async def sign_in(page: Page, account: Account) -> None:
    await page.goto("/login")
    await page.get_by_label("Email or username").fill(account.username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("a.who")).to_be_visible()


@pytest.mark.timeout(180)
async def test_a_bracket_advances_after_a_result(web: LiveServer, browsing: Browsing) -> None:
    organiser = await web.account()
    players = [await web.account() for _ in range(4)]
    created = await web.http.post(
        "/api/v1/tournaments",
        json={
            "name": "Browser Cup",
            "category": "chess",
            "max_participants": 4,
            "starts_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        },
        headers=organiser.headers,
    )
    assert created.status_code == 201, created.text
    tid = created.json()["id"]

    host = await browsing.person()
    await sign_in(host, organiser)
    await host.get_by_role("link", name="Tournaments").click()
    await host.get_by_role("link", name="Browser Cup").click()
    await expect(host.get_by_role("heading", name="Browser Cup")).to_be_visible()
    for player in players:
        joined = await web.http.post(f"/api/v1/tournaments/{tid}/join", headers=player.headers)
        assert joined.status_code == 200, joined.text
    # The organiser's page learns of the joins from the room.
    await expect(host.locator(".tournament-status")).to_contain_text("4/4 players")
    await host.get_by_role("button", name="Start").click()
    semis = host.get_by_role("region", name="Semi-finals", exact=True)
    await expect(semis.locator("li.match")).to_have_count(2)

    viewer = await browsing.person()
    await viewer.goto(f"/tournaments/{tid}")
    final = viewer.get_by_role("region", name="Final", exact=True)
    await expect(final.locator(".bracket-player")).to_have_text(["to be decided", "to be decided"])
    await browsing.screenshot(viewer, "bracket-before")

    first = semis.locator("li.match").first
    winner = (await first.get_by_role("button").first.text_content() or "").removesuffix(" won")
    await first.get_by_role("button").first.click()
    await expect(first).to_have_class("match match-completed")
    # The winner is in the final on both pages: the organiser's and the viewer's.
    await expect(
        host.get_by_role("region", name="Final", exact=True).locator(".bracket-player").first
    ).to_contain_text(winner)
    await expect(final.locator(".bracket-player").first).to_contain_text(winner)
    await expect(
        viewer.get_by_role("region", name="Semi-finals", exact=True).locator(".winner")
    ).to_contain_text(winner)
    await browsing.screenshot(viewer, "bracket-after")
    browsing.assert_no_errors()


async def test_the_channel_page_shows_its_top_supporters(
    web: LiveServer, browsing: Browsing
) -> None:
    creator, fan = await web.account(), await web.account()
    channel = await make_channel(web.http, creator)
    stream_id = await go_live(web.app, channel["slug"])
    await fund(web.http, fan, 1000)
    page = await browsing.person()
    await page.goto(f"/{channel['slug']}")
    supporters = page.get_by_role("region", name="Top supporters")
    await expect(supporters).to_contain_text("No supporters yet")
    # Joined to the room (its count comes with the join's answer): the tip's event reaches it.
    await expect(page.get_by_text("1 watching")).to_be_visible()
    tipped = await web.http.post(
        f"/api/v1/streams/{stream_id}/tips", json={"tokens": 250}, headers=fan.headers
    )
    assert tipped.status_code == 201, tipped.text
    # The room's tip:received brings the board up to date without a reload.
    entry = supporters.locator("li.leaderboard-entry")
    await expect(entry).to_have_count(1)
    await expect(entry).to_contain_text(fan.username)
    await expect(entry).to_contain_text("250 tokens")
    await supporters.get_by_label("Period").select_option("day")
    await expect(entry).to_contain_text("#1")
    await browsing.screenshot(page, "top-supporters")
    browsing.assert_no_errors()
