"""Operations in the browser: an announcement posted in the admin console shows as a banner to
a viewer; maintenance mode switched on in the console shows the maintenance page to a viewer,
not to an admin."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from stagecast.accounts.models import Role
from tests.factories import Account, login, set_role
from tests.realtime.conftest import LiveServer
from tests.web.conftest import PHONE, Browsing, sign_out_button, signed_in


async def switch_maintenance(staff: Page, *, on: bool, message: str = "") -> None:
    """Turn maintenance mode on or off in the console's Maintenance section."""
    await staff.goto("/admin/maintenance")
    switch = staff.get_by_role("form", name="Maintenance mode")
    state = switch.locator(".maintenance-state")
    await expect(state).to_contain_text(f"Maintenance mode is {'off' if on else 'on'}")
    await switch.get_by_label("Maintenance mode on").set_checked(on)
    if message:
        await switch.get_by_label("Message").fill(message)
    await switch.get_by_role("button", name="Save").click()
    await expect(state).to_contain_text(f"Maintenance mode is {'on' if on else 'off'}")


@pytest.mark.timeout(120)
async def test_announcement_banner_and_maintenance_page(
    web: LiveServer, browsing: Browsing
) -> None:
    admin = await web.account()
    await set_role(web.app, admin, Role.ADMIN)
    try:
        await announce_and_maintain(web, browsing, admin)
    finally:
        # The browser tests share their database: a failure must not leave the platform off.
        token = (await login(web.http, admin))["access_token"]
        off = await web.http.put(
            "/api/v1/admin/maintenance",
            json={"enabled": False},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert off.status_code == 200, off.text


async def announce_and_maintain(web: LiveServer, browsing: Browsing, admin: Account) -> None:
    staff = await signed_in(browsing, admin, "/admin/announcements")
    form = staff.get_by_role("form", name="New announcement")
    await form.get_by_label("Title").fill("Heads up")
    await form.get_by_label("Text").fill("New emotes tonight")
    await form.get_by_label("Type").select_option("warning")
    await form.get_by_role("button", name="Post announcement").click()
    posted = staff.locator(".announcement-item").filter(has_text="Heads up")
    await expect(posted).to_contain_text("New emotes tonight")
    await expect(posted.locator(".chip.showing")).to_be_visible()

    viewer = await browsing.person(viewport=PHONE)
    await viewer.goto("/")
    banner = viewer.locator(".announcement")
    await expect(banner).to_contain_text("Heads up")
    await expect(banner).to_contain_text("New emotes tonight")
    await expect(banner).to_have_class(re.compile("announcement-warning"))
    await browsing.screenshot(viewer, "announcement")
    await banner.get_by_role("button", name="Dismiss: Heads up").click()
    await expect(banner).to_have_count(0)

    # Maintenance mode switched on from the console.
    await switch_maintenance(staff, on=True, message="Moving to a bigger server")
    await browsing.screenshot(staff, "console-maintenance")
    await viewer.goto("/browse")
    await expect(viewer.get_by_role("heading", name="Down for maintenance")).to_be_visible()
    await expect(viewer.locator("main")).to_contain_text("Moving to a bigger server")
    await browsing.screenshot(viewer, "maintenance")
    # An admin keeps the app, with a reminder that nobody else has it, and can sign in
    # while it lasts.
    await sign_out_button(staff).click()
    await expect(staff.get_by_role("heading", name="Down for maintenance")).to_be_visible()
    await staff.goto("/login?next=/browse")
    await staff.get_by_label("Email or username").fill(admin.email)
    await staff.get_by_label("Password").fill(admin.password)
    await staff.get_by_role("button", name="Sign in").click()
    await expect(sign_out_button(staff)).to_be_visible()
    await staff.goto("/browse")
    await expect(staff.locator(".announcement").first).to_contain_text("Maintenance mode is on")
    await expect(staff.get_by_role("heading", name="Down for maintenance")).to_have_count(0)
    # The API says so too, with its Retry-After.
    refused = await web.http.get("/api/v1/streams")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "300"

    await switch_maintenance(staff, on=False)
    await viewer.reload()
    await expect(viewer.get_by_role("heading", name="Down for maintenance")).to_have_count(0)
    await expect(viewer.locator("main h1")).to_be_visible()
    # The browser logs the 503s the app's calls got while maintenance was on.
    browsing.assert_no_errors(tolerated=re.compile(r"503"))
