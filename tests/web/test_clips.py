"""A viewer clips a live stream in the browser, plays the clip at once, edits it, likes it,
and downloads its MP4; the embed page plays it and may be framed by any site."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.clips.conftest import mp4_frames
from tests.factories import make_channel, register, unique_name
from tests.media.conftest import eventually, start_publisher
from tests.realtime.conftest import LiveServer
from tests.web.conftest import Browsing
from tests.web.test_story import sign_up, video_advances

# A stream younger than 30 s: the one-click clip is first refused, then made of what there is.
YOUNG_STREAM = re.compile(r"status of 422 \(Unprocessable (Entity|Content)\) \(\S+/api/v1/clips\)")


@pytest.mark.timeout(300)
async def test_a_viewer_clips_a_live_stream_plays_it_and_downloads_the_mp4(
    web: LiveServer, browsing: Browsing
) -> None:
    creator = await register(web.http)
    channel = await make_channel(web.http, creator, slug=unique_name("clipped"))
    key = (await web.http.get("/api/v1/live/streams/me/key", headers=creator.headers)).json()
    publisher = await start_publisher(key["rtmp_url"], seconds=180)
    try:
        viewer = await browsing.person()
        await sign_up(viewer, unique_name("clipper"))
        await viewer.goto(f"/{channel['slug']}")
        await video_advances(viewer, beyond=8)

        await viewer.get_by_role("button", name="✂ Clip").click()
        await expect(viewer.get_by_text("Clipped! It plays now")).to_be_visible(timeout=15_000)
        await viewer.get_by_label("Title").fill("What a moment")
        await viewer.get_by_role("button", name="Save").click()
        await expect(viewer.get_by_text(re.compile(r"^Saved: "))).to_be_visible(timeout=15_000)
        await browsing.screenshot(viewer, "clip-editor")
        # The channel's Clips list got it through `clip:created`.
        await expect(viewer.locator("#clips").get_by_text("What a moment")).to_be_visible(
            timeout=15_000
        )

        await viewer.get_by_role("link", name="Open the clip").click()
        await expect(viewer.get_by_role("heading", name="What a moment")).to_be_visible()
        await video_advances(viewer, beyond=1)
        await viewer.get_by_role("button", name="♥ Like").click()
        await expect(viewer.get_by_role("button", name="♥ Like")).to_have_attribute(
            "aria-pressed", "true"
        )
        await expect(viewer.locator(".like-count")).to_have_text("1")

        download_link = viewer.get_by_role("link", name="Download MP4")
        await expect(download_link).to_be_visible(timeout=120_000)
        await browsing.screenshot(viewer, "clip-page")
        async with viewer.expect_download() as waiting:
            await download_link.click()
        download = await waiting.value
        assert download.suggested_filename == "What a moment.mp4"
        saved = browsing.output / "clip.mp4"
        await download.save_as(saved)
        clip_id = viewer.url.rsplit("/", 1)[-1]
        clip = (await web.http.get(f"/api/v1/clips/{clip_id}")).json()
        assert clip["view_count"] == 1
        # Within one frame of the clip (its range need not fall on frame boundaries).
        assert abs(await mp4_frames(saved) - clip["duration"] * 30) <= 1

        await _embed_and_trending(web, viewer, clip_id)
        await browsing.screenshot(viewer, "trending")
        browsing.assert_no_errors(tolerated=YOUNG_STREAM)
    finally:
        publisher.kill()
        await publisher.wait()


async def _embed_and_trending(web: LiveServer, viewer: Page, clip_id: str) -> None:
    # The embed page: the player alone, framable anywhere.
    embed = await web.http.get(f"/embed/clips/{clip_id}")
    assert "frame-ancestors *" in embed.headers["content-security-policy"]
    assert "x-frame-options" not in embed.headers
    assert (await web.http.get(f"/clips/{clip_id}")).headers["x-frame-options"] == "DENY"
    await viewer.goto(f"/embed/clips/{clip_id}")
    await expect(viewer.locator("#site-header")).to_be_hidden()
    await video_advances(viewer, beyond=1)

    await viewer.goto("/clips")
    await expect(viewer.get_by_role("heading", name="Trending clips")).to_be_visible()
    await expect(viewer.get_by_text("What a moment")).to_be_visible()


@pytest.mark.timeout(300)
async def test_a_viewer_clips_a_recording_where_they_are_watching(
    web: LiveServer, browsing: Browsing
) -> None:
    creator = await register(web.http)
    channel = await make_channel(web.http, creator, slug=unique_name("recorded"))
    key = (await web.http.get("/api/v1/live/streams/me/key", headers=creator.headers)).json()
    publisher = await start_publisher(key["rtmp_url"], seconds=10)
    await publisher.wait()

    async def recorded() -> list[dict[str, object]]:
        page = await web.http.get(f"/api/v1/channels/{channel['id']}/vods")
        data: list[dict[str, object]] = page.json()["data"]
        return data

    vods = await eventually(recorded)
    viewer = await browsing.person()
    await sign_up(viewer, unique_name("vodclipper"))
    await viewer.goto(f"/vods/{vods[0]['id']}")
    await video_advances(viewer, beyond=7)
    await viewer.get_by_role("button", name="✂ Clip").click()
    await expect(viewer.get_by_text("Clipped! It plays now")).to_be_visible(timeout=15_000)
    await viewer.get_by_role("link", name="Open the clip").click()
    await viewer.wait_for_url(re.compile(r"/clips/[0-9a-f-]+$"))
    await expect(viewer.locator(".clip-page h1")).to_be_visible()
    clip_id = viewer.url.rsplit("/", 1)[-1]
    clip = (await web.http.get(f"/api/v1/clips/{clip_id}")).json()
    assert clip["vod_id"] == vods[0]["id"]
    # The clip ends where the viewer was: past 7 s, so it is at least 7 s long.
    assert clip["duration"] >= 7
    assert clip["start"] == 0
    await video_advances(viewer, beyond=1)
    browsing.assert_no_errors()
