"""The web app recovers by itself: a master playlist that is missing for a while, an access
token that a rotated signing key no longer verifies."""

from __future__ import annotations

import json
import re

import pytest
from playwright.async_api import Route, expect

from tests.factories import make_channel, register, unique_name
from tests.media.conftest import start_publisher
from tests.realtime.conftest import LiveServer
from tests.web.conftest import Browsing
from tests.web.test_story import sign_up, video_advances

MISSING_MASTER = re.compile(r"status of 404 \(Not Found\) \(\S+/hls/\S+/master\.m3u8\)")


@pytest.mark.timeout(240)
async def test_the_player_keeps_asking_for_a_master_playlist_that_404s(
    web: LiveServer, browsing: Browsing
) -> None:
    creator = await register(web.http)
    channel = await make_channel(web.http, creator, slug=unique_name("late"))
    key = (await web.http.get("/api/v1/live/streams/me/key", headers=creator.headers)).json()
    publisher = await start_publisher(key["rtmp_url"], seconds=120)
    try:
        viewer = await browsing.person()
        refused = 0

        async def not_yet(route: Route) -> None:
            # The first asks find nothing, as on a node the stream has not reached yet.
            nonlocal refused
            if refused < 3:
                refused += 1
                await route.fulfill(status=404, body="{}", content_type="application/json")
            else:
                await route.continue_()

        await viewer.route(re.compile(r".*/hls/.*/master\.m3u8$"), not_yet)
        await viewer.goto(f"/{channel['slug']}")
        await video_advances(viewer)
        assert refused == 3
        browsing.assert_no_errors(tolerated=MISSING_MASTER)
    finally:
        publisher.kill()
        await publisher.wait()


@pytest.mark.timeout(240)
async def test_a_token_the_server_no_longer_verifies_is_refreshed_whatever_its_expiry(
    web: LiveServer, browsing: Browsing
) -> None:
    page = await browsing.person()
    name = unique_name("rotated")
    await sign_up(page, name)
    stored = json.loads(await page.evaluate("localStorage.getItem('stagecast.session')"))
    # As if the server's signing key had rotated: the token looks fresh, but its signature
    # no longer verifies.
    header, claims, signature = stored["access_token"].split(".")
    forged = f"{header}.{claims}.{signature[::-1]}"
    stored["access_token"] = forged
    await page.evaluate(
        "value => localStorage.setItem('stagecast.session', value)", json.dumps(stored)
    )
    await page.goto("/settings")
    await expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    await expect(page.get_by_label("Display name")).to_have_value(name)
    renewed = json.loads(await page.evaluate("localStorage.getItem('stagecast.session')"))
    assert renewed["access_token"] != forged
    assert renewed["user"]["username"] == name
    # The refusal the server gave the forged token is the only error the browser saw.
    browsing.assert_no_errors(
        tolerated=re.compile(r"status of 401 \(Unauthorized\) \(\S+/api/v1/\S+\)")
    )
