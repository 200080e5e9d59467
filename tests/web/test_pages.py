"""Every page on a phone-sized screen, reached and used with the keyboard."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.factories import PASSWORD, register, unique_name
from tests.realtime.conftest import LiveServer
from tests.web.conftest import PHONE, Browsing, fits_the_screen


async def tab_to(page: Page, name: str, *, presses: int = 25) -> None:
    """Press Tab until the form field called `name` has the focus."""
    for _ in range(presses):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement?.name") == name:
            return
    raise AssertionError(f"Tab never reached the field {name!r}")


async def fits_and_shoot(browsing: Browsing, page: Page, name: str) -> None:
    """The page fits a phone's width; a screenshot of it."""
    await fits_the_screen(page)
    await browsing.screenshot(page, name)


async def settings_page(web: LiveServer, browsing: Browsing, page: Page, username: str) -> None:
    """Settings, from the name in the header: a new display name shows at once; another
    device's session (signed in over the API) is signed out from here."""
    other_device = await web.http.post(
        "/api/v1/auth/login",
        json={"username": username, "password": PASSWORD},
        headers={"User-Agent": "curl/8.5.0"},
    )
    assert other_device.status_code == 200, other_device.text
    await page.get_by_role("link", name=username, exact=True).click()
    await expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    sessions = page.locator("li.session")
    await expect(sessions).to_have_count(2)
    await expect(sessions.filter(has_text="This device")).to_contain_text("Chrome on")
    await page.get_by_label("Display name").fill("Pocket Broadcaster")
    await page.get_by_label("Bio").fill("Streams from a phone")
    await page.get_by_role("button", name="Save profile").click()
    await expect(page.locator(".toast").filter(has_text="Profile saved")).to_be_visible()
    await expect(page.locator("a.who")).to_have_text("Pocket Broadcaster")
    await fits_and_shoot(browsing, page, "phone-settings")
    await sessions.filter(has_text="A program").get_by_role("button", name="Sign out").click()
    await expect(sessions).to_have_count(1)
    refused = await web.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": other_device.json()["refresh_token"]}
    )
    assert refused.status_code == 401, refused.text
    await page.reload()
    await expect(page.get_by_label("Display name")).to_have_value("Pocket Broadcaster")
    await expect(page.get_by_label("Bio")).to_have_value("Streams from a phone")


@pytest.mark.timeout(240)
async def test_every_page_on_a_phone_with_the_keyboard(web: LiveServer, browsing: Browsing) -> None:
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
    await fits_and_shoot(browsing, page, "phone-home")

    # The creator's pages: go live (which makes the channel), dashboard, wallet.
    await page.goto("/dashboard/live")
    await expect(page.get_by_role("heading", name="Go live", exact=True)).to_be_visible()
    await fits_and_shoot(browsing, page, "phone-go-live")
    await page.goto("/dashboard")
    await expect(page.get_by_role("heading", name="Creator dashboard")).to_be_visible()
    await expect(page.get_by_text("Stream to see your viewers here.")).to_be_visible()
    await fits_and_shoot(browsing, page, "phone-dashboard")
    await page.goto("/wallet")
    await expect(page.locator("#token-balance")).to_have_text("0 tokens")
    await fits_and_shoot(browsing, page, "phone-wallet")

    await settings_page(web, browsing, page, username)

    # The channel, offline, as its owner and as an anonymous visitor.
    await page.goto(f"/{username}")
    await expect(page.get_by_role("heading", name=username)).to_be_visible()
    await expect(page.locator(".player-state")).to_have_text("Offline")
    await fits_and_shoot(browsing, page, "phone-channel-owner")
    other = await browsing.person(viewport=PHONE, is_mobile=True)
    await other.goto(f"/{username}")
    await expect(other.get_by_role("link", name="Sign in", exact=True).last).to_be_visible()
    await expect(other.get_by_role("link", name="Follow")).to_have_attribute(
        "href", f"/login?next=%2F{username}"
    )
    await fits_and_shoot(browsing, other, "phone-channel-visitor")

    # Search finds the channel; the keyboard gets there from the header's search box.
    await page.goto("/")
    await tab_to(page, "q")
    await page.keyboard.type(username)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name=f"Results for “{username}”")).to_be_visible()
    await expect(page.get_by_role("link", name=username).first).to_be_visible()
    await fits_and_shoot(browsing, page, "phone-search")

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
