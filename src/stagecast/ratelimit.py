"""Rate limits per category (the seeds' tables), on the `limits` library.

Counters live in memory, or in Redis when `STAGECAST_REDIS_URL` is set so that every node
shares them. Redis carries only what can be lost: if it is unreachable, requests are let
through and the failure is logged, rather than taking the API down with it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from stagecast.accounts.deps import access_claims
from stagecast.accounts.security import hash_secret
from stagecast.config import RateLimits
from stagecast.deps import client_ip
from stagecast.errors import InvalidToken, RateLimitExceeded

log = structlog.get_logger(__name__)

CATEGORIES = (
    "anonymous",
    "authenticated",
    "auth",
    "streaming",
    "payments",
    "tips",
    "chat",
    "livestream_status",
    "livestream_general",
    "livestream_stream",
    "socket_connections",
    "socket_events",
    "reactions",
    "reports",
    "validation",
)


@dataclass(frozen=True, slots=True)
class LimitState:
    limit: int
    remaining: int
    reset_at: float

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }


class RateLimiter:
    """Counts hits per (category, identity) and raises RateLimitExceeded past the limit."""

    def __init__(self, limits: RateLimits, *, redis_url: str | None, key_prefix: str) -> None:
        self.enabled = limits.enabled
        self._items: dict[str, RateLimitItem] = {
            name: parse(getattr(limits, name)) for name in CATEGORIES
        }
        storage: Storage
        if redis_url:
            storage = RedisStorage(
                redis_url.replace("redis://", "async+redis://", 1)
                if redis_url.startswith("redis://")
                else redis_url,
                implementation="redispy",
                key_prefix=f"{key_prefix}:ratelimit",
            )
        else:
            storage = MemoryStorage()
        self._storage = storage
        self._strategy = SlidingWindowCounterRateLimiter(storage)

    async def hit(self, category: str, identity: str) -> LimitState | None:
        """Count one hit; return the window state, or raise when over the limit."""
        if not self.enabled:
            return None
        item = self._items[category]
        try:
            allowed = await self._strategy.hit(item, category, identity)
            stats = await self._strategy.get_window_stats(item, category, identity)
        except Exception:  # the counter store is optional; never fail a request on it
            log.warning("rate_limit_store_unavailable", category=category, exc_info=True)
            return None
        state = LimitState(item.amount, stats.remaining, stats.reset_time)
        if not allowed:
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            raise RateLimitExceeded(
                f"Rate limit for {category} requests exceeded; retry in {retry_after} s",
                headers={**state.headers(), "Retry-After": str(retry_after)},
                # Socket acks and refused handshakes have no headers: the body says it too.
                extra={"retry_after": retry_after},
            )
        return state

    async def reset(self) -> None:
        await self._storage.reset()


def _remember(request: Request, state: LimitState | None) -> None:
    # The response carries the tightest limit that applied to the request.
    if state is None:
        return
    current: LimitState | None = getattr(request.state, "rate_limit", None)
    if current is None or state.remaining < current.remaining:
        request.state.rate_limit = state


def request_identity(request: Request) -> tuple[str, str]:
    """Return (category, identity) for the general limit: per user when signed in, else per IP.

    Only the token's signature is checked here (no database): a forged token cannot pick
    someone else's bucket, and an invalid one is refused later by authentication anyway.
    """
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token:
        try:
            claims = access_claims(request, token.strip())
        except InvalidToken:
            return "anonymous", f"ip:{client_ip(request)}"
        return "authenticated", f"user:{claims.user_id}"
    api_key = request.headers.get("x-api-key")
    if api_key:
        return "authenticated", f"key:{hash_secret(api_key)[:24]}"
    return "anonymous", f"ip:{client_ip(request)}"


async def general_rate_limit(request: Request) -> None:
    """Router dependency: seed 000's public/authenticated limits."""
    limiter: RateLimiter = request.app.state.runtime.limiter
    category, identity = request_identity(request)
    _remember(request, await limiter.hit(category, identity))


def rate_limit(category: str, *, per: str = "identity") -> Callable[[Request], Awaitable[None]]:
    """Dependency limiting a route by category, per caller identity or per client IP."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown rate-limit category {category!r}")

    async def dependency(request: Request) -> None:
        limiter: RateLimiter = request.app.state.runtime.limiter
        identity = f"ip:{client_ip(request)}" if per == "ip" else request_identity(request)[1]
        _remember(request, await limiter.hit(category, identity))

    return dependency
