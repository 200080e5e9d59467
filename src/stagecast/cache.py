"""A per-process micro-cache for answers that are the same for every caller.

Directory pages (browse, a stream's details) are read far more than they change, and their
figures (viewer counts) move once a second. Serving the same bytes for up to a second saves
the database and the serialisation; writes on this node drop what they touch at once, and
other nodes catch up within the TTL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable

from cachetools import TTLCache
from fastapi import Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from stagecast.errors import AppError
from stagecast.middleware import send_problem

JSON = "application/json"


class ResponseCache:
    def __init__(self, *, ttl_seconds: float, max_entries: int = 4096) -> None:
        self.enabled = ttl_seconds > 0
        self._rendering: dict[tuple[Hashable, ...], asyncio.Future[bytes]] = {}
        self._entries: TTLCache[tuple[Hashable, ...], bytes] = TTLCache(
            maxsize=max_entries, ttl=ttl_seconds or 1
        )

    def lookup(self, path: str, query: str) -> bytes | None:
        return self._entries.get((path, query)) if self.enabled else None

    async def serve_request(
        self, request: Request, render: Callable[[], Awaitable[bytes]]
    ) -> Response:
        """`serve` keyed by the request's path and raw query, as the middleware looks it up."""
        return await self.serve((request.url.path, request.url.query), render)

    async def serve(
        self, key: tuple[Hashable, ...], render: Callable[[], Awaitable[bytes]]
    ) -> Response:
        """The cached JSON answer for `key`, rendering (and keeping) it when missing.

        Concurrent misses of one key share one render: when an entry expires under load,
        the database sees one query, not one per waiting request.
        """
        if not self.enabled:
            return Response(await render(), media_type=JSON)
        body = self._entries.get(key)
        if body is None:
            pending = self._rendering.get(key)
            if pending is None:
                pending = asyncio.ensure_future(render())
                self._rendering[key] = pending
                pending.add_done_callback(lambda _: self._rendering.pop(key, None))
            body = await asyncio.shield(pending)
            self._entries[key] = body
        return Response(body, media_type=JSON)

    def forget(self, predicate: Callable[[tuple[Hashable, ...]], bool]) -> None:
        """Drop the entries a write made stale."""
        for key in [k for k in list(self._entries.keys()) if predicate(k)]:
            self._entries.pop(key, None)


class CachedPagesMiddleware:
    """Answer cache hits before routing: no parameter parsing, no dependencies, no database.

    Only GETs of pages the routes put in the cache can hit. The general rate limit still
    applies (the answer carries its headers); misses go on to the route, which fills it.
    """

    def __init__(
        self, app: ASGIApp, *, cache: ResponseCache, limit: Callable[[Request], Awaitable[None]]
    ) -> None:
        self.app = app
        self.cache = cache
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and self.cache.enabled:
            body = self.cache.lookup(
                scope["path"], scope.get("query_string", b"").decode("latin-1")
            )
            if body is not None:
                try:
                    await self.limit(Request(scope, receive))
                except AppError as exc:
                    await send_problem(send, scope, exc)
                    return
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", JSON.encode()),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
