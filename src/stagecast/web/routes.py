"""The web app: one HTML shell for every page, and the bundle esbuild built into static/dist.

The app is a small single-page app (see docs/web.md): the server answers each page's URL with
the same shell, and the browser renders the page from the API. Channel pages live at
`/{slug}`, which is why channel slugs may not take the names of the app's own pages.
"""

from __future__ import annotations

import json
import re
from functools import cache
from html import escape
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from stagecast.channels import service as channels
from stagecast.channels.schemas import SLUG_PATTERN
from stagecast.deps import ReadSessionDep
from stagecast.errors import AppError, NotFound
from stagecast.middleware import DEFAULT_CSP

DIST = Path(__file__).parent / "static" / "dist"
PAGES = (
    "/",
    "/login",
    "/signup",
    "/search",
    "/browse",
    "/wallet",
    "/settings",
    "/dashboard",
    "/dashboard/live",
    "/tournaments",
    "/clips",
    "/admin",
)
# Names esbuild writes: `app-HASH.js`, `hls.light-HASH.js`, their maps and CSS.
_ASSET = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
_HASHED = re.compile(r"-[A-Z0-9]{8}\.")
_CONTENT_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "map": "application/json",
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "png": "image/png",
}

router = APIRouter(include_in_schema=False)


class WebAppNotBuilt(AppError):
    status, code, title = 503, "WEB_APP_NOT_BUILT", "The web app has not been built"


@cache
def _manifest(dist: Path) -> dict[str, str]:
    """The entry files of the build (read once: a rebuild means a restart)."""
    try:
        manifest: dict[str, str] = json.loads((dist / "manifest.json").read_text())
    except FileNotFoundError as exc:
        raise WebAppNotBuilt(
            "Build it with `make web` (npm ci and esbuild); `make run` does it for you"
        ) from exc
    return manifest


def render_shell(dist: Path = DIST) -> str:
    """The HTML every page starts from: the bundle, a header and a main for the router."""
    manifest = _manifest(dist)
    script = escape(f"/static/dist/{manifest['app.js']}")
    style = (
        f'<link rel="stylesheet" href="/static/dist/{escape(manifest["app.css"])}">'
        if "app.css" in manifest
        else ""
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark light">
<title>Stagecast</title>
<link rel="icon" href="data:,">
{style}
<script type="module" src="{script}"></script>
</head>
<body>
<a class="skip-link" href="#main">Skip to content</a>
<header class="site-header" id="site-header"></header>
<div class="announcements" id="announcements" role="region" aria-label="Announcements"></div>
<main id="main" tabindex="-1"><p class="loading">Loading…</p></main>
<div class="toasts" id="toasts" role="status" aria-live="polite"></div>
<noscript><p>Stagecast's web app needs JavaScript.
The API is at <a href="/docs">/docs</a>.</p></noscript>
</body>
</html>
"""


def _shell(status_code: int = 200) -> HTMLResponse:
    # The shell names hashed bundles; it must be fetched again after every deploy.
    return HTMLResponse(
        render_shell(), status_code=status_code, headers={"Cache-Control": "no-cache"}
    )


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


async def page() -> HTMLResponse:
    """A page of the app: the shell, which renders it."""
    return _shell()


for _path in PAGES:
    router.add_api_route(_path, page, methods=["GET"], response_class=HTMLResponse)


@router.get("/vods/{vod_id}", response_class=HTMLResponse)
async def vod_page(vod_id: str) -> HTMLResponse:
    """A recording's page (the app asks the API whether it exists)."""
    return _shell()


@router.get("/tournaments/{tournament_id}", response_class=HTMLResponse)
async def tournament_page(tournament_id: str) -> HTMLResponse:
    """A tournament's bracket page (the app asks the API whether it exists)."""
    return _shell()


@router.get("/admin/{section}", response_class=HTMLResponse)
async def admin_page(section: str) -> HTMLResponse:
    """A section of the admin console (the app checks who may open it)."""
    return _shell()


@router.get("/clips/{clip_id}", response_class=HTMLResponse)
async def clip_page(clip_id: str) -> HTMLResponse:
    """A clip's page (the app asks the API whether it exists)."""
    return _shell()


@router.get("/embed/clips/{clip_id}", response_class=HTMLResponse)
async def clip_embed(clip_id: str) -> HTMLResponse:
    """A clip's player alone, for other sites' iframes: the one page any origin may frame."""
    shell = _shell()
    shell.headers["Content-Security-Policy"] = DEFAULT_CSP.replace(
        "frame-ancestors 'none'", "frame-ancestors *"
    )
    return shell


@router.get("/docs", response_class=HTMLResponse)
async def api_docs(request: Request) -> HTMLResponse:
    """The API's interactive docs: Swagger UI from the build, nothing from another host."""
    manifest = _manifest(DIST)
    if "swagger-ui.js" not in manifest:
        raise WebAppNotBuilt("This build has no Swagger UI: rebuild it with `make web`")
    page = get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} API",
        swagger_js_url=f"/static/dist/{manifest['swagger-ui.js']}",
        swagger_css_url=f"/static/dist/{manifest['swagger-ui.css']}",
        swagger_favicon_url=f"/static/dist/{manifest['swagger-ui-favicon.png']}",
        # The validator badge would fetch an image from swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )
    page.headers["Cache-Control"] = "no-cache"  # it names hashed files
    return page


@router.get("/static/dist/{name}")
async def static_file(name: str) -> Response:
    """A file of the build: hashed names are immutable, the rest are revalidated."""
    return _asset(DIST / name)


@router.get("/static/dist/chunks/{name}")
async def static_chunk(name: str) -> Response:
    """A chunk loaded on demand (the player, the chart)."""
    return _asset(DIST / "chunks" / name)


def _asset(file: Path) -> Response:
    # One path segment of safe characters: nothing can climb out of the build folder.
    extension = file.name.rsplit(".", 1)[-1]
    if not _ASSET.fullmatch(file.name) or extension not in _CONTENT_TYPES or not file.is_file():
        raise NotFound("No such file")
    cache_control = (
        "public, max-age=31536000, immutable" if _HASHED.search(file.name) else "no-cache"
    )
    return FileResponse(
        file, media_type=_CONTENT_TYPES[extension], headers={"Cache-Control": cache_control}
    )


@router.get("/{slug}", response_class=HTMLResponse)
async def channel_page(slug: str, request: Request, session: ReadSessionDep) -> HTMLResponse:
    """A channel's page; anything that is not a channel stays a 404 (HTML for browsers)."""
    if SLUG_PATTERN.fullmatch(slug.lower()):
        async with session.begin():
            try:
                await channels.get_channel(session, slug.lower())
            except NotFound:
                pass
            else:
                return _shell()
    if _wants_html(request):
        return _shell(404)  # the app shows "not found" and the way home
    raise NotFound()
