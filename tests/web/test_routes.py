"""The server side of the web app: the page shell, channel pages, the built files."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx

from stagecast.channels.schemas import RESERVED_SLUGS
from stagecast.web.routes import DIST, PAGES
from tests.factories import make_channel, register

HTML = {"Accept": "text/html,application/xhtml+xml"}


def test_no_channel_can_take_a_page_of_the_app() -> None:
    # Channel pages sit at /{slug}: the first segment of every other path must be reserved.
    first_segments = {page.strip("/").split("/")[0] for page in PAGES} - {""}
    assert first_segments | {"vods", "static"} <= RESERVED_SLUGS


async def test_pages_answer_the_shell_with_the_built_bundle(client: httpx.AsyncClient) -> None:
    pages = (
        "/",
        "/login",
        "/signup",
        "/browse",
        "/search",
        "/wallet",
        "/settings",
        "/dashboard/live",
        "/admin",
        "/admin/queue",
    )
    for path in pages:
        page = await client.get(path, headers=HTML)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-cache"
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
    script = re.search(r'<script type="module" src="/static/dist/([^"]+)"', page.text)
    assert script, page.text
    bundle = await client.get(f"/static/dist/{script[1]}")
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert bundle.headers["cache-control"] == "public, max-age=31536000, immutable"
    chunks = sorted(p.name for p in (DIST / "chunks").glob("hls.light-*.js"))
    assert chunks, "the player is a chunk of its own"
    assert (await client.get(f"/static/dist/chunks/{chunks[0]}")).status_code == 200


async def test_a_channel_page_exists_only_for_a_channel(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    channel = await make_channel(client, owner)
    found = await client.get(f"/{channel['slug'].upper()}", headers=HTML)
    assert found.status_code == 200
    assert 'id="main"' in found.text

    # A browser gets the app (which says "not found"); anything else the problem.
    missing = await client.get("/nobody-here", headers=HTML)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    problem = await client.get("/nobody-here")
    assert problem.status_code == 404
    assert problem.headers["content-type"] == "application/problem+json"
    assert problem.json()["code"] == "NOT_FOUND"


async def test_api_paths_keep_their_answers(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/docs", headers=HTML)).headers["content-type"].startswith("text/html")
    missing = await client.get("/api/v1/nothing", headers=HTML)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert (await client.get("/openapi.json")).status_code == 200
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths
    assert "/{slug}" not in paths


async def test_only_built_files_are_served(client: httpx.AsyncClient) -> None:
    for path in (
        "/static/dist/..%2F..%2Froutes.py",
        "/static/dist/.hidden.js",
        "/static/dist/manifest.exe",
        "/static/dist/nothing-12345678.js",
        "/static/dist/chunks/..",
        "/static/routes.py",
    ):
        answer = await client.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "application/problem+json"


class _Links(HTMLParser):
    """Every URL an HTML page loads: src and href attributes, and `url:` in its scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls.extend(value for name, value in attrs if name in {"src", "href"} and value)

    def handle_data(self, data: str) -> None:
        self.urls.extend(re.findall(r"""\burl:\s*['"]([^'"]+)['"]""", data))


async def test_docs_load_only_files_this_server_serves(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert docs.headers["cache-control"] == "no-cache"
    links = _Links()
    links.feed(docs.text)
    assert not re.search(r"https?://|//[a-z]", docs.text), "the docs name another host"
    wanted = {
        ".js": "text/javascript",
        ".css": "text/css",
        ".png": "image/png",
        ".json": "application/json",
    }
    kinds = set()
    for url in links.urls:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
        kind = url[url.rindex(".") :]
        kinds.add(kind)
        served = await client.get(url)
        assert served.status_code == 200, url
        assert served.headers["content-type"].startswith(wanted[kind]), (url, served.headers)
    assert kinds == set(wanted), links.urls
    script = next(url for url in links.urls if url.endswith(".js"))
    assert b"SwaggerUIBundle" in (await client.get(script)).content
