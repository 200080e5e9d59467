"""The VOD page: it resumes where the viewer stopped and saves as it plays, replays the chat in
step with the video, and shows seek previews on its seek bar."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.async_api import Page, expect
from sqlalchemy import select

from stagecast.accounts.models import User
from stagecast.chat import service as chat
from stagecast.moderation.models import Report
from stagecast.runtime import Runtime
from tests.factories import PASSWORD, register, unique_name
from tests.realtime.conftest import LiveServer
from tests.vods.conftest import make_recording, say_in_chat
from tests.web.conftest import Browsing, sign_out_button
from tests.web.test_story import sign_up

PLAY_WAIT_MS = 60_000


async def _saved_progress(page: Page, vod_id: str) -> Any:
    """The signed-in viewer's saved position, read through the API with their token."""
    return await page.evaluate(
        """async (vodId) => {
            const { access_token } = JSON.parse(localStorage.getItem("stagecast.session"));
            const answer = await fetch(`/api/v1/vods/${vodId}/progress`,
                { headers: { Authorization: `Bearer ${access_token}` } });
            return (await answer.json()).position_seconds;
        }""",
        vod_id,
    )


async def _current_time(page: Page) -> float:
    value: float = await page.evaluate("document.querySelector('video.video').currentTime")
    return value


async def test_the_vod_page_resumes_replays_chat_and_previews(
    web: LiveServer, browsing: Browsing
) -> None:
    recording = await make_recording(web.app, web.http, seconds=24)
    chatter = await register(web.http)
    said = {
        at: await say_in_chat(web.app, recording, chatter.id, f"said at {at}", at)
        for at in (1.0, 5.0, 9.0, 15.0, 21.0)
    }
    runtime: Runtime = web.app.state.runtime
    async with runtime.db.session() as session, session.begin():
        owner = await session.get_one(User, uuid.UUID(recording.owner.id))
        await chat.delete_message(session, actor=owner, message_id=uuid.UUID(said[15.0]))

    viewer = await browsing.person()
    await sign_up(viewer, unique_name("vodfan"))
    await viewer.goto(f"/vods/{recording.id}")
    await expect(viewer.get_by_role("heading", name=recording.vod["title"])).to_be_visible()

    # Chat replay: a message shows once the video reaches its offset, never before.
    replay = viewer.locator(".replay .chat-message")
    await viewer.wait_for_function(
        "() => document.querySelector('video.video').currentTime > 5.5", timeout=PLAY_WAIT_MS
    )
    await expect(replay.filter(has_text="said at 5.0")).to_be_visible()
    in_step = await viewer.evaluate(
        """() => {
            const now = document.querySelector('video.video').currentTime;
            const shown = [...document.querySelectorAll('.replay .chat-message')];
            return shown.every((m) => Number(m.dataset.offset) <= now + 0.5);
        }"""
    )
    assert in_step
    await expect(replay.filter(has_text="said at 21.0")).to_have_count(0)

    # The viewer pauses after 9 s: the position is saved.
    await viewer.wait_for_function(
        "() => document.querySelector('video.video').currentTime > 9.5", timeout=PLAY_WAIT_MS
    )
    await expect(replay.filter(has_text="said at 9.0")).to_be_visible()
    await viewer.evaluate("document.querySelector('video.video').pause()")
    paused_at = await _current_time(viewer)
    await viewer.wait_for_function(
        """async ([vodId, at]) => {
            const { access_token } = JSON.parse(localStorage.getItem("stagecast.session"));
            const answer = await fetch(`/api/v1/vods/${vodId}/progress`,
                { headers: { Authorization: `Bearer ${access_token}` } });
            return Math.abs((await answer.json()).position_seconds - at) < 0.6;
        }""",
        arg=[recording.id, paused_at],
    )
    await browsing.screenshot(viewer, "vod-chat-replay")

    # Seek previews: the sprite's cues are on the seek bar; hovering shows one.
    seek_bar = viewer.locator(".seek-bar")
    await expect(seek_bar).to_have_attribute("data-previews", "5", timeout=PLAY_WAIT_MS)
    box = await viewer.locator("input.seek").bounding_box()
    assert box is not None
    await viewer.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
    await expect(viewer.locator(".seek-preview")).to_be_visible()
    await expect(viewer.locator(".seek-thumb")).to_have_attribute("data-cue", "640,0")
    await browsing.screenshot(viewer, "vod-seek-preview")

    # Coming back, the player resumes there, and the replay starts from there too.
    await viewer.reload()
    await expect(viewer.locator(".resumed")).to_be_visible()
    await viewer.wait_for_function(
        "() => { const v = document.querySelector('video.video');"
        " return v && !v.paused && v.currentTime > 0; }",
        timeout=PLAY_WAIT_MS,
    )
    assert await _current_time(viewer) >= paused_at - 1.0
    # What was said up to there is shown at once (the last 30 s of it), what follows is not.
    await expect(replay.filter(has_text="said at 9.0")).to_be_visible()
    await expect(replay.filter(has_text="said at 1.0")).to_be_visible()
    if await _current_time(viewer) < 20:
        await expect(replay.filter(has_text="said at 21.0")).to_have_count(0)
    # The deleted message is never replayed; the next one comes when the video gets there.
    await viewer.wait_for_function(
        "() => document.querySelector('video.video').currentTime > 21.5", timeout=PLAY_WAIT_MS
    )
    await expect(replay.filter(has_text="said at 21.0")).to_be_visible()
    await expect(replay.filter(has_text="said at 15.0")).to_have_count(0)
    assert await _saved_progress(viewer, recording.id) > paused_at  # saved as it played
    browsing.assert_no_errors()


async def _sign_in(page: Page, login: str) -> None:
    await page.goto("/login")
    await page.locator("input[name=login]").fill(login)
    await page.locator("input[name=password]").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(sign_out_button(page)).to_be_visible()


async def test_the_owner_hides_and_deletes_a_recording_that_a_viewer_reports(
    web: LiveServer, browsing: Browsing
) -> None:
    recording = await make_recording(web.app, web.http, seconds=4)
    owner = await browsing.person()
    await _sign_in(owner, recording.owner.username)
    await owner.goto(f"/vods/{recording.id}")
    await owner.get_by_label("Who can watch").select_option("private")
    await expect(owner.locator(".toast").filter(has_text="Who can watch: Only me")).to_be_visible()
    hidden = await web.http.get(f"/api/v1/vods/{recording.id}")
    assert hidden.status_code == 404

    viewer = await browsing.person()
    await sign_up(viewer, unique_name("vodreporter"))
    await viewer.goto(f"/vods/{recording.id}")
    await expect(viewer.get_by_role("heading", name="Nothing here")).to_be_visible()

    await owner.get_by_label("Who can watch").select_option("public")
    await expect(owner.locator(".toast").filter(has_text="Who can watch: Everyone")).to_be_visible()
    await viewer.reload()
    await expect(viewer.get_by_role("heading", name=recording.vod["title"])).to_be_visible()
    await viewer.get_by_role("button", name="Report").click()
    await viewer.get_by_label("Reason").select_option("spam")
    await viewer.get_by_label("Details (optional)").fill("Links in every message")
    await browsing.screenshot(viewer, "vod-report")
    await viewer.get_by_role("button", name="Send report").click()
    await expect(
        viewer.locator(".toast").filter(has_text="the moderators will look")
    ).to_be_visible()
    runtime: Runtime = web.app.state.runtime
    async with runtime.db.read_session() as session, session.begin():
        reports = (
            await session.scalars(
                select(Report).where(Report.content_id == uuid.UUID(recording.id))
            )
        ).all()
    assert [(r.reason, r.details, r.content_type) for r in reports] == [
        ("spam", "Links in every message", "vod")
    ]

    await owner.get_by_role("button", name="Delete recording").click()
    await owner.get_by_role("button", name="Delete for good").click()
    await expect(
        owner.locator(".toast").filter(has_text="The recording was deleted")
    ).to_be_visible()
    await expect(owner).to_have_url(re.compile(rf"/{recording.channel['slug']}$"))
    gone = await web.http.get(f"/api/v1/vods/{recording.id}")
    assert gone.status_code == 404
    browsing.assert_no_errors("status of 404 (Not Found)")  # the viewer's hidden recording
