"""A per-process micro-cache for answers that are the same for every caller.

Directory pages (browse, a stream's details) are read far more than they change, and their
figures (viewer counts) move once a second. Serving the same bytes for up to a second saves
the database and the serialisation; writes on this node drop what they touch at once, and
other nodes catch up within the TTL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable

from cachetools import TTLCache
from fastapi import Response

JSON = "application/json"


class ResponseCache:
    def __init__(self, *, ttl_seconds: float, max_entries: int = 4096) -> None:
        self.enabled = ttl_seconds > 0
        self._entries: TTLCache[tuple[Hashable, ...], bytes] = TTLCache(
            maxsize=max_entries, ttl=ttl_seconds or 1
        )

    async def serve(
        self, key: tuple[Hashable, ...], render: Callable[[], Awaitable[bytes]]
    ) -> Response:
        """The cached JSON answer for `key`, rendering (and keeping) it when missing."""
        body = self._entries.get(key) if self.enabled else None
        if body is None:
            body = await render()
            if self.enabled:
                self._entries[key] = body
        return Response(body, media_type=JSON)

    def forget(self, predicate: Callable[[tuple[Hashable, ...]], bool]) -> None:
        """Drop the entries a write made stale."""
        for key in [k for k in list(self._entries.keys()) if predicate(k)]:
            self._entries.pop(key, None)
