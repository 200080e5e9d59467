"""Polls and reactions in the browser: the owner starts a poll, a viewer votes and sees the bars
move as another viewer votes; two viewers react and both see the burst over the player."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.factories import go_live, make_channel
from tests.realtime.conftest import LiveServer
from tests.web.conftest import Browsing, signed_in


@pytest.mark.timeout(180)
async def test_a_viewer_votes_and_sees_the_bars_move(web: LiveServer, browsing: Browsing) -> None:
    owner = await web.account()
    channel = await make_channel(web.http, owner)
    path = f"/{channel['slug']}"
    creator = await signed_in(browsing, owner, path)
    panel = creator.locator(".poll-panel")
    await panel.get_by_role("button", name="Start a poll").click()
    await panel.get_by_label("Question").fill("Which map next?")
    await panel.get_by_label("Choice 1").fill("Desert")
    await panel.get_by_label("Choice 2").fill("Jungle")
    await panel.get_by_role("button", name="Add a choice").click()
    await panel.get_by_label("Choice 3").fill("Arctic")
    await panel.get_by_role("button", name="Start").click()
    await expect(panel.locator(".poll-question")).to_have_text("Which map next?")

    fan = await signed_in(browsing, await web.account(), path)
    fan_panel = fan.locator(".poll-panel")
    await expect(fan_panel.locator(".poll-question")).to_have_text("Which map next?")
    await fan_panel.get_by_role("button", name="Jungle").click()
    jungle = fan_panel.locator('.poll-choice[data-index="1"]')
    await expect(jungle).to_contain_text("Jungle ✓")
    await expect(jungle).to_contain_text("1 · 100%")

    # Another viewer votes elsewhere: the first one's bars move with the room's poll:voted.
    other = await web.account()
    poll_id = (await web.http.get(f"/api/v1/channels/{channel['id']}/polls")).json()["data"][0]
    voted = await web.http.post(
        f"/api/v1/polls/{poll_id['id']}/vote", json={"choice": 2}, headers=other.headers
    )
    assert voted.status_code == 200, voted.text
    await expect(jungle).to_contain_text("1 · 50%")
    await expect(fan_panel.locator('.poll-choice[data-index="2"]')).to_contain_text("1 · 50%")
    await expect(panel.locator(".poll-time")).to_contain_text("2 votes")
    await browsing.screenshot(fan, "poll-voted")

    await panel.get_by_role("button", name="End poll").click()
    await expect(fan_panel.locator(".poll-time")).to_contain_text("Final results · 2 votes")
    await expect(fan_panel.locator("button.votable")).to_have_count(0)
    browsing.assert_no_errors()


@pytest.mark.timeout(180)
async def test_two_viewers_react_and_both_see_the_burst(
    web: LiveServer, browsing: Browsing
) -> None:
    owner = await web.account()
    channel = await make_channel(web.http, owner)
    await go_live(web.app, channel["id"])
    path = f"/{channel['slug']}"
    first = await signed_in(browsing, await web.account(), path)
    second = await signed_in(browsing, await web.account(), path)
    for page in (first, second):
        await expect(page.get_by_role("group", name="Reactions")).to_be_visible()
    await first.get_by_role("button", name="React scHype").click()
    await second.get_by_role("button", name="React scHype").click()
    # Both reactions, in one burst or two, on both pages.
    for page in (first, second):
        hype = page.locator('.reaction-count[data-emoji="scHype"]')
        await expect(hype).to_have_text("🎉 \u00d72")
    await browsing.screenshot(first, "reaction-burst")
    browsing.assert_no_errors()
