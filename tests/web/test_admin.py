"""The admin console in the browser: a viewer reports a chat message from its menu and an
admin rejects it from the queue, which takes it out of the viewer's chat; a non-admin gets the
not-allowed page and the console asks the API nothing for them; the users, reports,
analytics, audit and feature-flag sections against the real API."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Locator, Page, Request, expect

from tests.factories import Account, make_admin, make_channel
from tests.realtime.conftest import LiveServer
from tests.web.conftest import PHONE, Browsing, fits_the_screen, signed_in

SPAM = "cheap followers at spam.example"


async def report_from_the_menu(browsing: Browsing, viewer: Page, message: Locator) -> None:
    """Report a chat message as spam from its menu's Report dialog."""
    await message.get_by_label("Message actions").click()
    await message.get_by_role("menuitem", name="Report").click()
    dialog = viewer.get_by_role("dialog", name="Report to the moderators")
    await dialog.get_by_label("Reason").select_option("spam")
    await dialog.get_by_label("Details (optional)").fill("Selling followers")
    await browsing.screenshot(viewer, "report-chat-message")
    await dialog.get_by_role("button", name="Send report").click()
    await expect(dialog).to_have_count(0)
    thanks = viewer.locator(".toast").filter(has_text="the moderators will look")
    await expect(thanks).to_be_visible()


@pytest.mark.timeout(180)
async def test_a_reported_chat_message_is_rejected_in_the_queue_and_leaves_the_chat(
    web: LiveServer, browsing: Browsing
) -> None:
    owner = await web.account()
    channel = await make_channel(web.http, owner)
    author = await web.account()
    admin = await make_admin(web.http, web.app)

    # A viewer who is not staff: no Admin link, and /admin says no without asking the API.
    viewer_account = await web.account()
    viewer = await signed_in(browsing, viewer_account, "/")
    asked: list[str] = []

    def staff_calls(request: Request) -> None:
        if "/api/v1/admin" in request.url or "/api/v1/moderation" in request.url:
            asked.append(request.url)

    viewer.on("request", staff_calls)
    await expect(viewer.get_by_role("link", name="Admin")).to_have_count(0)
    await viewer.goto("/admin/queue")
    await expect(viewer.get_by_role("heading", name="Not allowed")).to_be_visible()
    await expect(viewer.get_by_role("navigation", name="Admin console")).to_have_count(0)
    await browsing.screenshot(viewer, "not-allowed")
    assert asked == []

    await viewer.goto(f"/{channel['slug']}")
    # The viewer's own message back in its chat: its socket is in the room.
    box = viewer.get_by_role("textbox", name="Chat message")
    await box.fill("hello room")
    await box.press("Enter")
    await expect(viewer.locator(".chat-message").filter(has_text="hello room")).to_be_visible()
    talker = await web.connect(author)
    joined = await talker.call("stream:join", {"channelId": channel["id"]})
    assert joined["ok"], joined
    sent = await talker.call("chat:send", {"channelId": channel["id"], "message": SPAM})
    assert sent["ok"], sent
    message = viewer.locator(".chat-message").filter(has_text=SPAM)
    await expect(message).to_be_visible()

    # The admin has the queue open: the report is announced there as it comes in.
    staff = await signed_in(browsing, admin, "/admin/queue?content_type=chat_message")
    await expect(staff.locator(".admin-paged .empty, .queue-item").first).to_be_visible()
    await report_from_the_menu(browsing, viewer, message)
    assert asked == []
    await staff.get_by_role("button", name="Show them").click()
    item = staff.locator(".queue-item").filter(has_text=SPAM)
    await expect(item).to_contain_text("1 report from 1 person")
    await expect(item).to_contain_text("Spam (1)")
    await item.get_by_text("Latest reports (1)").click()
    await expect(item).to_contain_text("Selling followers")
    await expect(item).to_contain_text(f"@{viewer_account.username}")
    await item.get_by_label("Note").fill("Follower selling")
    await browsing.screenshot(staff, "queue")
    await item.get_by_role("button", name="Reject").click()
    await expect(item.locator(".queue-decision")).to_contain_text("Rejected: removed")
    await expect(item.locator(".queue-decision")).to_contain_text("Follower selling")

    # Gone from the viewer's chat, without a reload.
    removed = viewer.locator(f'.chat-message[data-message-id="{sent["message"]["id"]}"]')
    await expect(removed).to_have_class("chat-message deleted")
    await expect(removed).not_to_contain_text(SPAM)
    await expect(viewer.locator(".chat-message").filter(has_text="hello room")).to_be_visible()
    browsing.assert_no_errors()


async def manage_a_user(web: LiveServer, staff: Page, admin: Account, target: Account) -> None:
    """In the Users section: find `target` by username, make them a creator, suspend them
    (they cannot sign in) and reinstate them."""
    await staff.get_by_label("Username or email").fill(target.username)
    await staff.get_by_role("button", name="Filter").click()
    await expect(staff).to_have_url(re.compile(rf"/admin/users\?q={target.username}$"))
    row = staff.locator(f'.user-item[data-username="{target.username}"]')
    await row.get_by_label(f"Role of @{target.username}").select_option("creator")
    await expect(staff.locator(".toast").filter(has_text="is now a creator")).to_be_visible()
    await row.get_by_role("button", name="Suspend").click()
    await expect(row.locator(".chip.bad")).to_have_text("suspended")
    refused = await web.http.post(
        "/api/v1/auth/login", json={"email": target.email, "password": target.password}
    )
    assert refused.status_code in (401, 403), refused.text
    await row.get_by_role("button", name="Reinstate").click()
    await expect(row.get_by_role("button", name="Suspend")).to_be_visible()
    found = await web.http.get(f"/api/v1/admin/users?q={target.username}", headers=admin.headers)
    [user] = found.json()["data"]
    assert (user["role"], user["status"]) == ("creator", "active")


@pytest.mark.timeout(180)
async def test_the_console_sections_work_against_the_api(
    web: LiveServer, browsing: Browsing
) -> None:
    admin = await make_admin(web.http, web.app)
    target = await web.account()
    reporter = await web.account()
    filed = await web.http.post(
        "/api/v1/reports",
        json={"content_type": "user", "content_id": target.id, "reason": "harassment"},
        headers=reporter.headers,
    )
    assert filed.status_code == 201, filed.text
    staff = await signed_in(browsing, admin, "/admin/users")

    await manage_a_user(web, staff, admin, target)

    # Reports: the pending one, resolved with a warning.
    await staff.get_by_role("link", name="Reports").click()
    report = staff.locator(f'.report-item[data-id="{filed.json()["id"]}"]')
    await expect(report).to_contain_text("Harassment or bullying")
    await report.get_by_label("Action").select_option("warn")
    await report.get_by_role("button", name="Apply").click()
    await expect(report.locator(".queue-decision")).to_contain_text("Kept, its author warned")

    # Analytics: a bar a day, the figures the API gives.
    await staff.goto("/admin/analytics?period=week")
    overview = (
        await web.http.get("/api/v1/admin/analytics/overview?period=week", headers=admin.headers)
    ).json()
    new_users = staff.locator('.chart-card[data-figure="new_users"] rect.bar')
    await expect(new_users).to_have_count(7)
    today = overview["days"][-1]
    assert await new_users.last.get_attribute("data-day") == today["day"]
    assert await new_users.last.get_attribute("data-value") == str(today["new_users"])
    label = staff.locator(".stat-label").get_by_text("Users", exact=True)
    users = staff.locator(".stat").filter(has=label)
    await expect(users).to_contain_text(f"{overview['totals']['users']:,}")
    await browsing.screenshot(staff, "analytics")

    # Audit: the admin's own changes, filtered by actor.
    await web.app.state.runtime.audit.flush()
    await staff.goto(f"/admin/audit?actor={admin.id}")
    await expect(staff.locator("tbody.audit-rows tr").first).to_be_visible()
    actions = await staff.locator("tbody.audit-rows tr td:nth-child(3) strong").all_inner_texts()
    assert "admin_update_user" in actions
    assert "admin_resolve_report" in actions

    # Feature flags: clips off, and the API refuses a clip; back on.
    await staff.get_by_role("link", name="Feature flags").click()
    clips = staff.get_by_role("switch", name="clips")
    await clips.uncheck()
    await expect(staff.locator(".toast").filter(has_text="clips is off")).to_be_visible()
    flags = await web.http.get("/api/v1/admin/feature-flags", headers=admin.headers)
    assert {f["name"]: f["enabled"] for f in flags.json()["data"]}["clips"] is False
    await clips.check()
    await expect(staff.locator(".toast").filter(has_text="clips is on")).to_be_visible()

    # On a phone the sections go above the section, and nothing sticks out sideways.
    await staff.set_viewport_size(PHONE)
    drawn = {"audit": "tbody.audit-rows tr", "users": ".user-item", "analytics": ".chart-card"}
    for section, selector in drawn.items():
        await staff.goto(f"/admin/{section}")
        await expect(staff.locator(selector).first).to_be_visible()
        await fits_the_screen(staff)
    await browsing.screenshot(staff, "analytics-phone")
    browsing.assert_no_errors()
