"""KYC and privacy in the browser: a creator submits their documents from the settings and
sees them approved (the admin approves over the API: the admin console is another issue's);
the Do Not Sell choice and a data export from the privacy panel."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import pytest
from playwright.async_api import expect

from stagecast.privacy import jobs
from tests.factories import make_admin, make_channel
from tests.kyc.test_kyc import PDF, png
from tests.realtime.conftest import LiveServer
from tests.web.conftest import Browsing
from tests.web.test_interactions import signed_in


@pytest.mark.timeout(180)
async def test_a_creator_submits_kyc_and_an_admin_approves_it(
    web: LiveServer, browsing: Browsing, tmp_path: Path
) -> None:
    creator = await web.account()
    await make_channel(web.http, creator)
    admin = await make_admin(web.http, web.app)
    photo, scan = tmp_path / "id-front.png", tmp_path / "id.pdf"
    photo.write_bytes(png(32, 20))
    scan.write_bytes(PDF)

    page = await signed_in(browsing, creator, "/settings")
    panel = page.locator("section.kyc")
    await expect(panel.locator(".kyc-status")).to_have_text("Not verified yet")
    await panel.get_by_label("Legal name").fill("Grace Hopper")
    await panel.get_by_label("Date of birth").fill("1986-12-09")
    await panel.get_by_label("Documents").set_input_files([photo, scan])
    await panel.get_by_role("button", name="Submit for verification").click()
    await expect(panel.locator(".kyc-status")).to_have_attribute("data-status", "pending")
    await browsing.screenshot(page, "kyc-submitted")

    queue = await web.http.get("/api/v1/admin/kyc?status=pending", headers=admin.headers)
    [waiting] = queue.json()["data"]
    assert (waiting["legal_name"], waiting["date_of_birth"]) == ("Grace Hopper", "1986-12-09")
    assert [d["content_type"] for d in waiting["documents"]] == ["image/png", "application/pdf"]
    document = await web.http.get(
        f"/api/v1/admin/kyc/documents/{waiting['documents'][0]['id']}", headers=admin.headers
    )
    assert document.content == photo.read_bytes()
    approved = await web.http.post(
        f"/api/v1/admin/kyc/{waiting['id']}/approve", headers=admin.headers
    )
    assert approved.status_code == 200, approved.text

    await page.reload()
    await expect(panel.locator(".kyc-status")).to_have_text("Verified")
    await expect(panel.get_by_role("button", name="Submit for verification")).to_have_count(0)
    browsing.assert_no_errors()


@pytest.mark.timeout(180)
async def test_privacy_panel_opts_out_and_downloads_an_export(
    web: LiveServer, browsing: Browsing
) -> None:
    viewer = await web.account()
    page = await signed_in(browsing, viewer, "/settings")
    panel = page.locator("section.privacy")
    await panel.get_by_label("Do not sell or share my personal information").check()
    await expect(page.locator(".toast").filter(has_text="We will not sell")).to_be_visible()
    choices = await web.http.get("/api/v1/users/me/privacy", headers=viewer.headers)
    assert choices.json()["do_not_sell"] is True

    await panel.get_by_role("button", name="Export my data").click()
    await expect(page.locator(".toast").filter(has_text="being prepared")).to_be_visible()
    # Test servers leave background jobs to the tests: build it now, as the request's task
    # would in production, and come back to the page.
    await jobs.run_once(web.app.state.runtime)
    await page.reload()
    download_button = panel.get_by_role("button", name="Download")
    await expect(download_button).to_be_visible()
    async with page.expect_download() as downloading:
        await download_button.click()
    download = await downloading.value
    saved = await download.path()
    archive = zipfile.ZipFile(io.BytesIO(await asyncio.to_thread(Path(saved).read_bytes)))
    assert viewer.email.encode() in archive.read("profile.json")
    browsing.assert_no_errors()
