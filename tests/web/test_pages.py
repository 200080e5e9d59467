"""Every page on a phone-sized screen, reached and used with the keyboard."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.factories import PASSWORD, register, unique_name
from tests.realtime.conftest import LiveServer
from tests.web.conftest import PHONE, Browsing


async def tab_to(page: Page, name: str, *, presses: int = 25) -> None:
    """Press Tab until the form field called `name` has the focus."""
    for _ in range(presses):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement?.name") == name:
            return
    raise AssertionError(f"Tab never reached the field {name!r}")


async def fits_the_screen(page: Page) -> None:
    """Nothing sticks out sideways: no horizontal scrolling on a phone."""
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the screen"


@pytest.mark.timeout(240)
async def test_every_page_on_a_phone_with_the_keyboard(browsing: Browsing) -> None:
    username = unique_name("phone")
    page = await browsing.person(viewport=PHONE, is_mobile=True, has_touch=True)

    # Sign up with the keyboard alone: the skip link comes first, then the form.
    await page.goto("/signup")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip-link"
    await tab_to(page, "username")
    await page.keyboard.type(username)
    await page.keyboard.press("Tab")
    await page.keyboard.type(f"{username}@example.com")
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Live now")).to_be_visible()
    await fits_the_screen(page)
    await browsing.screenshot(page, "phone-home")

    # The creator's pages: go live (which makes the channel), dashboard, wallet.
    await page.goto("/dashboard/live")
    await expect(page.get_by_role("heading", name="Go live", exact=True)).to_be_visible()
    await fits_the_screen(page)
    await browsing.screenshot(page, "phone-go-live")
    await page.goto("/dashboard")
    await expect(page.get_by_role("heading", name="Creator dashboard")).to_be_visible()
    await expect(page.get_by_text("Stream to see your viewers here.")).to_be_visible()
    await fits_the_screen(page)
    await browsing.screenshot(page, "phone-dashboard")
    await page.goto("/wallet")
    await expect(page.locator("#token-balance")).to_have_text("0 tokens")
    await fits_the_screen(page)
    await browsing.screenshot(page, "phone-wallet")

    # The channel, offline, as its owner and as an anonymous visitor.
    await page.goto(f"/{username}")
    await expect(page.get_by_role("heading", name=username)).to_be_visible()
    await expect(page.locator(".player-state")).to_have_text("Offline")
    await fits_the_screen(page)
    await browsing.screenshot(page, "phone-channel-owner")
    other = await browsing.person(viewport=PHONE, is_mobile=True)
    await other.goto(f"/{username}")
    await expect(other.get_by_role("link", name="Sign in", exact=True).last).to_be_visible()
    await expect(other.get_by_role("link", name="Follow")).to_have_attribute(
        "href", f"/login?next=%2F{username}"
    )
    await fits_the_screen(other)
    await browsing.screenshot(other, "phone-channel-visitor")

    # Search finds the channel; the keyboard gets there from the header's search box.
    await page.goto("/")
    await tab_to(page, "q")
    await page.keyboard.type(username)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name=f"Results for “{username}”")).to_be_visible()
    await expect(page.get_by_role("link", name=username).first).to_be_visible()
    await fits_the_screen(page)
    await browsing.screenshot(page, "phone-search")

    # Signing out is a button too.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("link", name="Sign in")).to_be_visible()

    browsing.assert_no_errors()


async def test_a_refusal_reaches_the_person(web: LiveServer, browsing: Browsing) -> None:
    taken = await register(web.http)
    page = await browsing.person(viewport=PHONE, is_mobile=True)
    await page.goto("/signup")
    await page.get_by_label("Username").fill(taken.username)
    await page.get_by_label("Email").fill(f"other-{taken.email}")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("alert")).to_contain_text("taken")
    await browsing.screenshot(page, "phone-signup-error")
    browsing.assert_no_errors("status of 409 (Conflict)")  # the refusal asked for


async def test_a_missing_channel_says_so(browsing: Browsing) -> None:
    page = await browsing.person()
    answer = await page.goto("/nobody-streams-here")
    assert answer is not None
    assert answer.status == 404
    await expect(page.get_by_role("heading", name="Nothing here")).to_be_visible()
    await page.get_by_role("link", name="Back to the live streams").click()
    await expect(page.get_by_role("heading", name="Live now")).to_be_visible()
    await browsing.screenshot(page, "not-found")
    browsing.assert_no_errors("status of 404 (Not Found)")  # the page's own answer
