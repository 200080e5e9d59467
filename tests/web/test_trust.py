"""KYC and privacy in the browser: a creator submits their documents from the settings and
sees them approved by an admin in the console's KYC review;
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
from tests.web.conftest import Browsing, signed_in


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

    # The admin reviews it in the console: the details, both documents, then approves.
    staff = await signed_in(browsing, admin, "/admin/kyc")
    review = staff.locator(".kyc-item").filter(has_text="Grace Hopper")
    await expect(review).to_contain_text("born 1986-12-09")
    await review.get_by_role("button", name="Open document 1").click()
    shown = review.get_by_role("img", name="Document 1 of the submission")
    await expect(shown).to_be_visible()
    # The decrypted file itself: the PNG's own size, not a placeholder.
    size = await shown.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size == [32, 20]
    await review.get_by_role("button", name="Open document 2").click()
    pdf = review.get_by_role("link", name="Read document 2 (PDF) in a new tab")
    # The file is held in the page's memory, opened in a tab of its own when clicked.
    assert (await pdf.get_attribute("href") or "").startswith("blob:")
    await expect(shown).to_be_visible()  # each document has its own place
    await browsing.screenshot(staff, "kyc-review")
    await review.get_by_role("button", name="Approve").click()
    await expect(review.locator(".queue-decision")).to_contain_text("Approved")

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
