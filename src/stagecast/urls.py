"""Public addresses the API hands out: from settings when set, else the host a request reached."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request

from stagecast.runtime import Runtime


def http_url(request: Request, runtime: Runtime, path: str) -> str:
    """An absolute address of `path` on this server (`PUBLIC_URL` when set)."""
    base = runtime.settings.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/{path.lstrip('/')}"


def rtmp_server_url(request: Request, runtime: Runtime) -> str:
    """Where publishers send RTMP (`RTMP_PUBLIC_URL` when set), without the stream key."""
    settings = runtime.settings
    if settings.rtmp_public_url:
        return settings.rtmp_public_url
    port = runtime.rtmp_port or settings.rtmp_port  # the bound port when settings say 0
    # The public URL's host when set; a request's Host only in development (and only one
    # the allowed hosts admit, see AllowedHostsMiddleware).
    public_host = urlsplit(settings.public_url).hostname if settings.public_url else None
    return f"rtmp://{public_host or request.url.hostname or settings.host}:{port}/live"
