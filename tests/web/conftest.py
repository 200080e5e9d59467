"""Browser tests: a real server with media on, Debian's Chromium driven by Playwright.

Chromium comes from Debian (`make chromium` installs it when missing; Playwright never
downloads a browser). Its fake camera and microphone feed the browser broadcaster, and the
server's real ffmpeg transcodes what MediaRecorder sends. Every page of every context has
its console errors and uncaught exceptions collected; a test fails on any of them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    async_playwright,
    expect,
)

from stagecast.config import InteractionSettings
from stagecast.db import migrate
from tests.conftest import fresh_database_url
from tests.factories import PASSWORD, Account
from tests.media.conftest import media_settings
from tests.realtime.conftest import LiveServer, serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}


@dataclass
class Browsing:
    """One browser for a test: contexts (separate people), screenshots, collected errors."""

    browser: Browser
    base_url: str
    output: Path
    errors: list[str] = field(default_factory=list)
    shots: int = 0

    async def person(self, *, viewport: dict[str, int] = DESKTOP, **options: Any) -> Page:
        """A new browser context (its own storage: another person) with one page."""
        context: BrowserContext = await self.browser.new_context(
            base_url=self.base_url, viewport=viewport, **options
        )
        context.set_default_timeout(30_000)
        context.on("console", self._console)
        context.on("weberror", lambda error: self.errors.append(f"uncaught: {error.error}"))
        return await context.new_page()

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            self.errors.append(f"console: {message.text} ({where})")

    async def screenshot(self, page: Page, name: str) -> Path:
        """Save the page as `NN-name.png` in the test's output folder."""
        self.shots += 1
        path = self.output / f"{self.shots:02d}-{name}.png"
        await page.evaluate("window.scrollTo(0, 0)")  # the sticky header sits at the top
        await page.screenshot(path=str(path), full_page=True)
        return path

    def assert_no_errors(self, *expected: str, tolerated: re.Pattern[str] | None = None) -> None:
        """No console error and no uncaught exception, except the `expected` ones (the
        browser itself logs every 4xx answer, including refusals a test asks for) and those
        matching `tolerated` (answers that may or may not come, depending on timing)."""
        for wanted in expected:
            assert any(wanted in error for error in self.errors), (wanted, self.errors)
        unexpected = [
            e
            for e in self.errors
            if not any(w in e for w in expected) and not (tolerated and tolerated.search(e))
        ]
        assert not unexpected, "\n".join(unexpected)


def sign_out_button(page: Page) -> Locator:
    """The header's Sign out (the settings page has its own, one per session)."""
    return page.get_by_role("navigation", name="Main").get_by_role("button", name="Sign out")


async def signed_in(browsing: Browsing, account: Account, path: str) -> Page:
    """A new person's page signed in as `account`, at `path`."""
    page = await browsing.person()
    await page.goto(f"/login?next={path}")
    await page.get_by_label("Email or username").fill(account.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(sign_out_button(page)).to_be_visible()
    await page.goto(path)
    return page


async def fits_the_screen(page: Page) -> None:
    """Nothing sticks out sideways: no horizontal scrolling on a phone."""
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the screen"


def web_settings(tmp_path: Path, database_url: str) -> Any:
    # The source plus one rung: the quality menu has a choice, the machine is spared. The
    # rooms' windows run, as in production (polls' tallies, reactions' bursts).
    return media_settings(
        tmp_path, database_url, rung=240, interactions=InteractionSettings(background=True)
    )


@pytest.fixture(scope="session")
def web_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The browser tests' own database: the home page lists every live stream in it, and
    other tests leave streams "live" whose media (thumbnails) lived in their own servers."""
    url = fresh_database_url(tmp_path_factory.mktemp("web"), "web")
    migrate.upgrade(url)
    return url


@pytest.fixture
async def web(tmp_path: Path, web_database_url: str) -> AsyncIterator[LiveServer]:
    """The whole platform on a free port, media included."""
    async with serving(web_settings(tmp_path, web_database_url)) as live:
        yield live


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail("Debian's Chromium is missing: `make chromium` installs it")
    return CHROMIUM


@pytest.fixture
async def browsing(
    web: LiveServer, chromium: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Browsing]:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    output = request.config.rootpath / "test-output" / "web" / name
    output.mkdir(parents=True, exist_ok=True)
    for old in output.glob("*.png"):
        old.unlink()
    async with async_playwright() as playwright:
        # Playwright gives every launch a fresh, temporary user-data-dir.
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_FLAGS
        )
        yield Browsing(browser, web.url, output)
        await browser.close()
