"""A page on another origin (listed in STAGECAST_CORS_ORIGINS) connects with the official JS
client's default transports: long-polling first, then the websocket upgrade."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web as aioweb
from playwright.async_api import async_playwright

from tests.conftest import make_settings
from tests.realtime.conftest import free_port, serving
from tests.web.conftest import CHROMIUM, CHROMIUM_FLAGS

CLIENT = Path(__file__).parents[1] / "e2e/node/node_modules/socket.io-client/dist/socket.io.min.js"

PAGE = """<!doctype html><meta charset="utf-8"><script src="/socket.io.min.js"></script>
<script>
window.result = new Promise((resolve) => {
  const socket = io(SERVER, { reconnection: false });
  socket.on("connect", () => {
    const engine = socket.io.engine;
    if (engine.transport.name === "websocket") resolve({ connected: true, transport: "websocket" });
    engine.once("upgrade", () => resolve({ connected: true, transport: engine.transport.name }));
    setTimeout(() => resolve({ connected: true, transport: engine.transport.name }), 10000);
  });
  socket.on("connect_error", (error) => resolve({ connected: false, error: String(error) }));
});
</script>"""


@pytest.fixture
async def other_origin() -> AsyncIterator[str]:
    """A second site, on its own port, serving the page and the official client."""
    port = free_port()
    app = aioweb.Application()

    async def page(_: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(text=PAGE, content_type="text/html")

    async def client(_: aioweb.Request) -> aioweb.FileResponse:
        return aioweb.FileResponse(CLIENT)

    app.router.add_get("/", page)
    app.router.add_get("/socket.io.min.js", client)
    runner = aioweb.AppRunner(app)
    await runner.setup()
    await aioweb.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "not-listed"])
async def test_a_listed_origin_connects_over_polling_then_websocket(
    tmp_path: Path, committed_database_url: str, other_origin: str, listed: bool
) -> None:
    origins = [other_origin] if listed else ["http://elsewhere.example"]
    settings = make_settings(tmp_path, committed_database_url, cors_origins=origins)
    async with serving(settings) as live, async_playwright() as playwright:
        polled = await live.http.get(
            "/socket.io/?EIO=4&transport=polling", headers={"Origin": other_origin}
        )
        allow = polled.headers.get_list("access-control-allow-origin")
        assert allow == ([other_origin] if listed else []), polled.headers
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        page = await browser.new_page()
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        await page.add_init_script(f"window.SERVER = {live.url!r};")
        await page.goto(other_origin)
        result = await asyncio.wait_for(page.evaluate("window.result"), 20)
        await browser.close()
    if listed:
        assert result == {"connected": True, "transport": "websocket"}, (result, console)
    else:
        assert result["connected"] is False, result
