"""The creator is told, on the go-live page and the dashboard, when OBS's keyframes are too
far apart (its default "0 = auto" is 250 frames), and the notice goes when the stream ends."""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import expect

from tests.factories import unique_name
from tests.media.conftest import OBS_DEFAULT_KEYFRAMES, start_publisher
from tests.realtime.conftest import LiveServer
from tests.web.conftest import Browsing
from tests.web.test_story import sign_up


@pytest.mark.timeout(240)
async def test_keyframes_too_far_apart_are_shown_to_the_creator(
    web: LiveServer, browsing: Browsing
) -> None:
    creator = await browsing.person()
    await sign_up(creator, unique_name("obs"))
    await creator.goto("/dashboard/live")
    await expect(creator.locator("#encoder-advice")).to_contain_text("Keyframe Interval 1 s")
    notice = creator.locator("#stream-health")
    await expect(notice).to_be_hidden()
    await creator.get_by_role("button", name="Reveal").click()
    key = creator.locator("#stream-key")
    await expect(key).to_have_text(re.compile(r"^live_"))
    port = web.app.state.runtime.rtmp_port
    url = f"rtmp://127.0.0.1:{port}/live/{await key.text_content()}"

    publisher = await start_publisher(url, 8, OBS_DEFAULT_KEYFRAMES)
    # The room's stream:health, while the page is open.
    await expect(notice).to_be_visible(timeout=30_000)
    await expect(notice).to_contain_text("Your keyframes are more than 2 s apart")
    await expect(notice).to_contain_text("Keyframe Interval to 1 s (or 2 s)")
    await browsing.screenshot(creator, "go-live-keyframes-too-far")
    # The dashboard, opened later, reads it with the stream key.
    dashboard = await creator.context.new_page()
    await dashboard.goto("/dashboard")
    await expect(dashboard.locator("#stream-health")).to_contain_text("re-encoded")
    await browsing.screenshot(dashboard, "dashboard-keyframes-too-far")

    _, stderr = await asyncio.wait_for(publisher.communicate(), 60)
    assert publisher.returncode == 0, stderr.decode(errors="replace")
    await expect(notice).to_be_hidden(timeout=30_000)  # stream:ended
    await expect(dashboard.locator("#stream-health")).to_be_hidden()
    browsing.assert_no_errors()
