"""Leaderboards in Redis sorted sets, when Redis is configured.

One sorted set per board and period bucket (`<prefix>:leaderboard:<board>:<period>:<start>`),
its member the user id and its score the user's points negated: ZRANGE then walks them by
points descending and, among equal points, by user id ascending, the order the database uses.

Redis holds only what can be lost. A set is built from the database the first time it is read
(and again a day later, when it expires), marked built, and from then on the feed adds each
committed event's points to it; an event for a set not built yet is left to the build, which
reads it from the database. Before building, a node waits for its own feed to finish what was
committed, so that an event is never both read by the build and added after it. (An event
another node commits during a build may be counted twice until the set expires.)
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, cast

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.leaderboards.events import POINTS, chat_board, supporters_board
from stagecast.leaderboards.service import (
    NEIGHBOURS,
    Board,
    Period,
    all_scores,
    period_start,
)
from stagecast.realtime.bus import DomainEvent

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from stagecast.runtime import Runtime

log = structlog.get_logger(__name__)

BUILT_SECONDS = 24 * 3600  # a set is rebuilt from the database a day after it was built
CONTRIBUTIONS = frozenset({"tip:received", "donation:received", "gift:sent"})

# Add points to every bucket whose set was built; the others are built from the database.
_INCREMENT = """
for _, key in ipairs(KEYS) do
  if redis.call('exists', key .. ':built') == 1 then
    redis.call('zincrby', key, ARGV[1], ARGV[2])
  end
end
return 1
"""


class SortedSets:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._increment = redis.register_script(_INCREMENT)

    def key(self, board: str, period: Period, at: datetime) -> str:
        start = period_start(period, at)
        bucket = "all" if start is None else f"{period}:{start.date().isoformat()}"
        return f"{self._prefix}:leaderboard:{board}:{bucket}"

    async def add(self, board: str, user_id: str, points: int, at: datetime) -> None:
        keys = [self.key(board, period, at) for period in Period]
        await self._increment(keys=keys, args=[-points, user_id])

    async def ensure(
        self, session: AsyncSession, board: Board, period: Period, now: datetime
    ) -> str:
        """The set's key, built from the database when it is not."""
        key = self.key(board.name, period, now)
        if not await self._redis.exists(f"{key}:built"):
            ranked = await all_scores(session, board, period_start(period, now))
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                if ranked:
                    pipe.zadd(key, {str(user_id): -score for user_id, score in ranked})
                    pipe.expire(key, BUILT_SECONDS)
                pipe.set(f"{key}:built", 1, ex=BUILT_SECONDS)
                await pipe.execute()
        return key

    async def top(
        self, key: str, *, limit: int, offset: int = 0
    ) -> list[tuple[int, uuid.UUID, int]]:
        rows = cast(
            "list[tuple[bytes, float]]",
            await self._redis.zrange(key, offset, offset + limit - 1, withscores=True),
        )
        return [
            (offset + n + 1, uuid.UUID(member.decode()), -int(score))
            for n, (member, score) in enumerate(rows)
        ]

    async def entry(
        self, key: str, user_id: uuid.UUID
    ) -> tuple[int | None, int, list[tuple[int, uuid.UUID, int]]]:
        position = cast("int | None", await self._redis.zrank(key, str(user_id)))
        if position is None:
            return None, 0, []
        score: float | None = await self._redis.zscore(key, str(user_id))
        start = max(position - NEIGHBOURS, 0)
        around = await self.top(key, limit=position - start + NEIGHBOURS + 1, offset=start)
        return position + 1, -int(score or 0), around


def points_of(event: DomainEvent) -> tuple[str, str, int, datetime] | None:
    """(board, user, points, when) an event adds to a sorted-set board, if any."""
    payload = event.payload
    if event.name in CONTRIBUTIONS:
        # The public copy names its sender; private ones stay off the board.
        if payload.get("is_private") or not payload.get("from_user_id"):
            return None
        board = supporters_board(uuid.UUID(payload["channel_id"]))
        when = datetime.fromisoformat(payload["created_at"])
        return board, payload["from_user_id"], int(payload["tokens"]), when
    if event.name == "chat:message":
        board = chat_board(uuid.UUID(payload["channel_id"]))
        return board, payload["author"]["id"], 1, datetime.fromisoformat(payload["created_at"])
    if event.name == POINTS:
        when = datetime.fromisoformat(payload["at"])
        return payload["board"], payload["user_id"], int(payload["points"]), when
    return None


class LeaderboardFeed:
    """Adds committed events' points to the sorted sets, in order, from one task."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._queue: asyncio.Queue[tuple[str, str, int, datetime]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._sets: SortedSets | None = None

    def sorted_sets(self) -> SortedSets | None:
        """The store, or None without Redis."""
        redis = self._runtime.redis
        if redis is None:
            return None
        if self._sets is None:
            self._sets = SortedSets(redis, self._runtime.settings.key_prefix)
        return self._sets

    def on_commit(self, event: DomainEvent) -> None:
        """The event bus's commit listener (called in the event loop, at commit)."""
        if self._runtime.redis is None:
            return
        scored = points_of(event)
        if scored is None:
            return
        self._queue.put_nowait(scored)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="leaderboards")

    async def drain(self) -> None:
        """Wait until every committed event's points are in Redis."""
        await self._queue.join()

    async def stop(self) -> None:
        if self._task is not None:
            await self.drain()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            board, user_id, points, when = await self._queue.get()
            try:
                sets = self.sorted_sets()
                if sets is not None:
                    await sets.add(board, user_id, points, when)
            except Exception:
                # Lost points are found again when the set is next built from the database.
                log.exception("leaderboard_update_failed", board=board)
            finally:
                self._queue.task_done()
