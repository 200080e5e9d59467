"""Operations in the browser: an announcement shows as a banner to a viewer; maintenance mode
shows the maintenance page to a viewer, not to an admin."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from stagecast.accounts.models import Role
from tests.factories import login, set_role
from tests.realtime.conftest import LiveServer
from tests.web.conftest import PHONE, Browsing


@pytest.mark.timeout(120)
async def test_announcement_banner_and_maintenance_page(
    web: LiveServer, browsing: Browsing
) -> None:
    admin = await web.account()
    await set_role(web.app, admin, Role.ADMIN)
    admin.access_token = (await login(web.http, admin))["access_token"]
    made = await web.http.post(
        "/api/v1/admin/announcements",
        json={"title": "Heads up", "content": "New emotes tonight", "type": "warning"},
        headers=admin.headers,
    )
    assert made.status_code == 201, made.text

    viewer = await browsing.person(viewport=PHONE)
    await viewer.goto("/")
    banner = viewer.locator(".announcement")
    await expect(banner).to_contain_text("Heads up")
    await expect(banner).to_contain_text("New emotes tonight")
    await expect(banner).to_have_class(re.compile("announcement-warning"))
    await browsing.screenshot(viewer, "announcement")
    await banner.get_by_role("button", name="Dismiss: Heads up").click()
    await expect(banner).to_have_count(0)

    on = await web.http.put(
        "/api/v1/admin/maintenance",
        json={"enabled": True, "message": "Moving to a bigger server"},
        headers=admin.headers,
    )
    assert on.status_code == 200, on.text
    await viewer.goto("/browse")
    await expect(viewer.get_by_role("heading", name="Down for maintenance")).to_be_visible()
    await expect(viewer.locator("main")).to_contain_text("Moving to a bigger server")
    await browsing.screenshot(viewer, "maintenance")
    # An admin keeps the app, with a reminder that nobody else has it.
    staff = await browsing.person()
    await staff.goto("/login?next=/browse")
    await staff.get_by_label("Email or username").fill(admin.email)
    await staff.get_by_label("Password").fill(admin.password)
    await staff.get_by_role("button", name="Sign in").click()
    await expect(staff.get_by_role("button", name="Sign out")).to_be_visible()
    await staff.goto("/browse")
    await expect(staff.locator(".announcement").first).to_contain_text("Maintenance mode is on")
    await expect(staff.get_by_role("heading", name="Down for maintenance")).to_have_count(0)
    # The API says so too, with its Retry-After.
    refused = await web.http.get("/api/v1/streams")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "300"

    off = await web.http.put(
        "/api/v1/admin/maintenance", json={"enabled": False}, headers=admin.headers
    )
    assert off.status_code == 200
    await viewer.reload()
    await expect(viewer.get_by_role("heading", name="Down for maintenance")).to_have_count(0)
    await expect(viewer.locator("main h1")).to_be_visible()
    # The browser logs the 503s the app's calls got while maintenance was on.
    browsing.assert_no_errors(tolerated=re.compile(r"503"))
