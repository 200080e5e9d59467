"""A per-process micro-cache for answers that are the same for every caller.

Directory pages (browse, a stream's details) are read far more than they change, and their
figures (viewer counts) move once a second. Serving the same bytes for up to a second saves
the database and the serialisation; writes on this node drop what they touch at once, and
other nodes catch up within the TTL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from cachetools import TTLCache
from fastapi import Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from stagecast.errors import AppError
from stagecast.middleware import send_problem

JSON = "application/json"
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """Values kept for `ttl_seconds`, per process; concurrent misses of one key share one
    load, so an entry that expires under load costs the database one query, not one per
    waiting caller. `forget` drops an entry and any load under way (its result is not kept)."""

    def __init__(self, *, ttl_seconds: float, max_entries: int = 4096) -> None:
        self.enabled = ttl_seconds > 0
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._entries: TTLCache[K, V] = TTLCache(maxsize=max_entries, ttl=ttl_seconds or 1)

    def peek(self, key: K) -> V | None:
        return self._entries.get(key) if self.enabled else None

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        if not self.enabled:
            return await load()
        if key in self._entries:
            return self._entries[key]
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(load())
            self._loading[key] = pending
            pending.add_done_callback(lambda done: self._settle(key, done))
        return await asyncio.shield(pending)

    def _settle(self, key: K, done: asyncio.Future[V]) -> None:
        if self._loading.get(key) is not done:
            return  # forgotten while it loaded: a later load has the fresh value
        del self._loading[key]
        if not done.cancelled() and done.exception() is None:
            self._entries[key] = done.result()

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
        self._loading.pop(key, None)

    def forget_where(self, predicate: Callable[[K], bool]) -> None:
        for key in [k for k in [*self._entries.keys(), *self._loading] if predicate(k)]:
            self.forget(key)


class ResponseCache:
    """JSON answers by key (a page's path and query), as `Memo` keeps them."""

    def __init__(self, *, ttl_seconds: float, max_entries: int = 4096) -> None:
        self._memo: Memo[tuple[Hashable, ...], bytes] = Memo(
            ttl_seconds=ttl_seconds, max_entries=max_entries
        )
        self.enabled = self._memo.enabled

    def lookup(self, path: str, query: str) -> bytes | None:
        return self._memo.peek((path, query))

    async def serve_request(
        self, request: Request, render: Callable[[], Awaitable[bytes]]
    ) -> Response:
        """`serve` keyed by the request's path and raw query, as the middleware looks it up."""
        return await self.serve((request.url.path, request.url.query), render)

    async def serve(
        self, key: tuple[Hashable, ...], render: Callable[[], Awaitable[bytes]]
    ) -> Response:
        """The cached JSON answer for `key`, rendering (and keeping) it when missing."""
        return Response(await self._memo.get(key, render), media_type=JSON)

    def forget(self, predicate: Callable[[tuple[Hashable, ...]], bool]) -> None:
        """Drop the entries a write made stale."""
        self._memo.forget_where(predicate)


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
