"""The API docs (/docs) in Chromium with every other host out of reach: as on a machine
without internet."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from playwright.async_api import Route, expect

from tests.web.conftest import Browsing


async def test_docs_render_the_operations_without_the_internet(browsing: Browsing) -> None:
    page = await browsing.person()
    ours = urlsplit(browsing.base_url).netloc
    elsewhere: list[str] = []

    async def only_this_server(route: Route) -> None:
        if urlsplit(route.request.url).netloc == ours:
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort("internetdisconnected")

    await page.context.route("**/*", only_this_server)
    await page.goto("/docs")

    operations = page.locator(".opblock")
    await expect(operations.first).to_be_visible()
    # Swagger UI draws only the tags near the viewport (a virtual list): scroll through the
    # page and collect every tag it draws; all of the document's must come by.
    wanted = {
        tag
        for methods in (await (await page.request.get("/openapi.json")).json())["paths"].values()
        for operation in methods.values()
        for tag in operation.get("tags", [])
    }
    seen: set[str] = set()
    for _ in range(200):
        tags = page.locator("h3.opblock-tag")
        seen |= {
            str(await tags.nth(i).get_attribute("data-tag")) for i in range(await tags.count())
        }
        if seen >= wanted:
            break
        await page.mouse.wheel(0, 600)
        await asyncio.sleep(0.05)
    assert seen >= wanted, wanted - seen
    await page.evaluate("window.scrollTo(0, 0)")
    login = page.locator(".opblock-post").filter(has_text="/api/v1/auth/login").first
    await expect(login).to_be_visible()
    # An operation opens and shows its parameters and its documented problem answers.
    await login.locator(".opblock-summary").click()
    await expect(login.locator(".responses-table")).to_contain_text("429")
    await browsing.screenshot(page, "docs")
    assert elsewhere == []
    browsing.assert_no_errors()
