"""Public addresses the API hands out: from settings when set, else the host a request reached."""

from __future__ import annotations

from fastapi import Request

from stagecast.runtime import Runtime


def http_url(request: Request, runtime: Runtime, path: str) -> str:
    """An absolute address of `path` on this server (`PUBLIC_URL` when set)."""
    base = runtime.settings.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/{path.lstrip('/')}"


def rtmp_server_url(request: Request, runtime: Runtime) -> str:
    """Where publishers send RTMP (`RTMP_PUBLIC_URL` when set), without the stream key."""
    settings = runtime.settings
    port = runtime.rtmp_port or settings.rtmp_port  # the bound port when settings say 0
    return settings.rtmp_public_url or f"rtmp://{request.url.hostname or settings.host}:{port}/live"
