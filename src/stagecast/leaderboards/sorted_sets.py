"""Leaderboards in Redis sorted sets, when Redis is configured.

One sorted set per board and period bucket (`<prefix>:leaderboard:<board>:<period>:<start>`),
its member the user id and its score the user's points negated: ZRANGE then walks them by
points descending and, among equal points, by user id ascending, the order the database uses.

Redis holds only what can be lost, and every score in it is one the database gave: a set is
built from the database the first time it is read (and again a day later, when it expires),
and an event does not add points to it: it marks its user dirty on the board, and the next read
counts that user's scores again from the database before answering. Events and builds can then
interleave in any order across nodes without counting anything twice or losing it, because
each write into a set carries a ticket, taken from one counter per board *before* its database
read, and a set keeps, per user, only the write with the highest ticket:

- the write with the highest ticket read the database after every other write had taken its
  ticket, so after every event those writes were for had committed: it is the newest;
- an event is marked after its commit; a build marks its board live before taking its ticket,
  so an event committed after a build's read finds the board live and is marked, and counted
  again by the next read (the build keeps the scores of users written since its ticket);
- a mark is cleared only if no event marked the same user again meanwhile.

Marks cost one small script per event (the high-rate events: chat messages, tips), never a
database read; the reads pay for the recounts, a few indexed aggregates for the users that
changed since the last read.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, cast

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.leaderboards.events import CHANGED, chat_board, supporters_board
from stagecast.leaderboards.service import (
    NEIGHBOURS,
    Board,
    Period,
    all_scores,
    member_scores,
    period_start,
)
from stagecast.realtime.bus import DomainEvent

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from stagecast.runtime import Runtime

log = structlog.get_logger(__name__)

BUILT_SECONDS = 24 * 3600  # a set is rebuilt from the database a day after it was built
# A board stays live (its events marked) a little longer than any of its sets.
LIVE_SECONDS = BUILT_SECONDS + 3600
BUILD_LOCK_MS = 30_000  # one node builds a set at a time; a crashed builder's lock expires
BUILD_WAIT_SECONDS = 10.0  # how long a read waits for another node's build
RECOUNT_BATCH = 500  # users recounted per database statement
CONTRIBUTIONS = frozenset({"tip:received", "donation:received", "gift:sent"})

# KEYS: the board's live marker, its dirty hash. ARGV: user, ttl.
_MARK = """
if redis.call('exists', KEYS[1]) == 1 then
  redis.call('hincrby', KEYS[2], ARGV[1], 1)
  redis.call('expire', KEYS[2], ARGV[2])
end
return 1
"""

# KEYS: per bucket (set, tickets hash, floor). ARGV: ticket, ttl, then per user: the user and
# its score in each bucket. A user's score is written if the ticket is newer than both the
# last build's (the floor) and the last write for that user.
_WRITE = """
local ticket, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local buckets = #KEYS / 3
local i = 3
while i <= #ARGV do
  local member = ARGV[i]
  for b = 0, buckets - 1 do
    local key, tickets, floor = KEYS[3 * b + 1], KEYS[3 * b + 2], KEYS[3 * b + 3]
    local score = tonumber(ARGV[i + 1 + b])
    if ticket > tonumber(redis.call('get', floor) or '0')
        and ticket > tonumber(redis.call('hget', tickets, member) or '0') then
      if score > 0 then
        redis.call('zadd', key, -score, member)
      else
        redis.call('zrem', key, member)
      end
      redis.call('hset', tickets, member, ticket)
      if redis.call('ttl', key) == -1 then redis.call('expire', key, ttl) end
      if redis.call('ttl', tickets) == -1 then redis.call('expire', tickets, ttl) end
    end
  end
  i = i + 1 + buckets
end
return 1
"""

# KEYS: the dirty hash. ARGV: pairs of user and the mark read. Clears the marks not renewed.
_CLEAR = """
for i = 1, #ARGV, 2 do
  if redis.call('hget', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('hdel', KEYS[1], ARGV[i])
  end
end
return 1
"""

# KEYS: set, the build's temporary set, built marker, tickets hash, floor. ARGV: ticket, ttl.
# Users written after the build's ticket keep the newer score; the temporary set then takes
# the set's place in one step.
_INSTALL = """
local ticket, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
if ticket <= tonumber(redis.call('get', KEYS[5]) or '0') then
  redis.call('del', KEYS[2])
  return 0
end
local written = redis.call('hgetall', KEYS[4])
for i = 1, #written, 2 do
  local member = written[i]
  if tonumber(written[i + 1]) > ticket then
    local score = redis.call('zscore', KEYS[1], member)
    if score then
      redis.call('zadd', KEYS[2], score, member)
    else
      redis.call('zrem', KEYS[2], member)
    end
  else
    redis.call('hdel', KEYS[4], member)
  end
end
if redis.call('exists', KEYS[2]) == 1 then
  redis.call('rename', KEYS[2], KEYS[1])
  redis.call('expire', KEYS[1], ttl)
else
  redis.call('del', KEYS[1])
end
redis.call('set', KEYS[5], ticket, 'EX', ttl)
redis.call('set', KEYS[3], ticket, 'EX', ttl)
return 1
"""

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]) end
return 1
"""


class SortedSets:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._mark = redis.register_script(_MARK)
        self._write = redis.register_script(_WRITE)
        self._clear = redis.register_script(_CLEAR)
        self._install = redis.register_script(_INSTALL)
        self._release = redis.register_script(_RELEASE)

    def key(self, board: str, period: Period, at: datetime) -> str:
        start = period_start(period, at)
        bucket = "all" if start is None else f"{period}:{start.date().isoformat()}"
        return f"{self._board_key(board)}:{bucket}"

    def _board_key(self, board: str) -> str:
        return f"{self._prefix}:leaderboard:{board}"

    async def mark(self, board: str, user_id: str) -> None:
        """Mark a user's scores on a board as changed (when a set of the board exists)."""
        base = self._board_key(board)
        await self._mark(keys=[f"{base}:live", f"{base}:dirty"], args=[user_id, LIVE_SECONDS])

    async def ensure(
        self, session: AsyncSession, board: Board, period: Period, now: datetime
    ) -> str | None:
        """The set's key, built from the database when it is not; None when another node's
        build did not finish in time (the caller reads the database).

        Call it outside a transaction: a build reads in one of its own, begun after its
        ticket."""
        key = self.key(board.name, period, now)
        if await self._redis.exists(f"{key}:built"):
            return key
        token = uuid.uuid4().hex
        lock = f"{key}:building"
        if not await self._redis.set(lock, token, nx=True, px=BUILD_LOCK_MS):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + BUILD_WAIT_SECONDS
            while loop.time() < deadline:
                await asyncio.sleep(0.05)
                if await self._redis.exists(f"{key}:built"):
                    return key
            return None
        try:
            await self.build(session, board, period, now)
        finally:
            await self._release(keys=[lock], args=[token])
        return key

    async def build(
        self, session: AsyncSession, board: Board, period: Period, now: datetime
    ) -> None:
        """Fill the period's set from the database and put it in place."""
        key = self.key(board.name, period, now)
        base = self._board_key(board.name)
        # Live before the ticket: an event committed after the read below is marked.
        await self._redis.set(f"{base}:live", 1, ex=LIVE_SECONDS)
        ticket = int(await self._redis.incr(f"{base}:ticket"))
        ranked = await self._read(session, board, period_start(period, now))
        temporary = f"{key}:build:{uuid.uuid4().hex}"
        async with self._redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(ranked), RECOUNT_BATCH):
                chunk = ranked[start : start + RECOUNT_BATCH]
                pipe.zadd(temporary, {str(user_id): -score for user_id, score in chunk})
            pipe.expire(temporary, BUILD_LOCK_MS // 1000)
            await pipe.execute()
        await self._install(
            keys=[key, temporary, f"{key}:built", f"{key}:tickets", f"{key}:floor"],
            args=[ticket, BUILT_SECONDS],
        )

    async def _read(
        self, session: AsyncSession, board: Board, since: datetime | None
    ) -> list[tuple[uuid.UUID, int]]:
        # Its own transaction: its snapshot begins after the ticket was taken.
        async with session.begin():
            return await all_scores(session, board, since)

    async def refresh(self, session: AsyncSession, board: Board, now: datetime) -> None:
        """Count again, from the database, the scores of the users marked on the board.

        Call it outside a transaction (it reads in its own, begun after its ticket)."""
        base = self._board_key(board.name)
        marks = cast("dict[bytes, bytes]", await self._redis.hgetall(f"{base}:dirty"))
        if not marks:
            return
        ticket = int(await self._redis.incr(f"{base}:ticket"))
        users = [uuid.UUID(member.decode()) for member in marks]
        periods = list(Period)
        counted: dict[Period, dict[uuid.UUID, int]] = {}
        async with session.begin():
            for period in periods:
                since = period_start(period, now)
                counted[period] = {}
                for start in range(0, len(users), RECOUNT_BATCH):
                    batch = users[start : start + RECOUNT_BATCH]
                    counted[period].update(await member_scores(session, board, since, batch))
        keys: list[str] = []
        for period in periods:
            key = self.key(board.name, period, now)
            keys += [key, f"{key}:tickets", f"{key}:floor"]
        args: list[str | int] = [ticket, BUILT_SECONDS]
        for user_id in users:
            args += [str(user_id), *(counted[p].get(user_id, 0) for p in periods)]
        await self._write(keys=keys, args=args)
        await self._clear(keys=[f"{base}:dirty"], args=list(_pairs(marks.items())))

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


def _pairs(items: Iterable[tuple[bytes, bytes]]) -> Iterable[bytes]:
    for member, mark in items:
        yield member
        yield mark


def marked_by(event: DomainEvent) -> tuple[str, str] | None:
    """(board, user) whose score an event changed, if any."""
    payload = event.payload
    if event.name in CONTRIBUTIONS:
        # The public copy names its sender; private ones stay off the board.
        if payload.get("is_private") or not payload.get("from_user_id"):
            return None
        return supporters_board(uuid.UUID(payload["channel_id"])), payload["from_user_id"]
    if event.name == "chat:message":
        return chat_board(uuid.UUID(payload["channel_id"])), payload["author"]["id"]
    if event.name == CHANGED:
        return payload["board"], payload["user_id"]
    return None


class LeaderboardFeed:
    """Marks committed events' users on the boards, in order, from one task."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
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

    async def prepared(
        self, session: AsyncSession, board: Board, period: Period, now: datetime
    ) -> tuple[SortedSets, str] | None:
        """The board's set for the period, built and with its changed scores counted again,
        once this node's committed events are marked; None without Redis (or when another
        node's build of it did not finish in time): the database answers.

        Call it between transactions: builds and recounts read in their own."""
        sets = self.sorted_sets()
        if sets is None:
            return None
        await self.drain()
        key = await sets.ensure(session, board, period, now)
        if key is None:
            return None
        await sets.refresh(session, board, now)
        return sets, key

    def on_commit(self, event: DomainEvent) -> None:
        """The event bus's commit listener (called in the event loop, at commit)."""
        if self._runtime.redis is None:
            return
        marked = marked_by(event)
        if marked is None:
            return
        self._queue.put_nowait(marked)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="leaderboards")

    async def drain(self) -> None:
        """Wait until every committed event's mark is in Redis."""
        await self._queue.join()

    async def stop(self) -> None:
        if self._task is not None:
            await self.drain()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            board, user_id = await self._queue.get()
            try:
                sets = self.sorted_sets()
                if sets is not None:
                    await sets.mark(board, user_id)
            except Exception:
                # A lost mark leaves that score as it was until the set is next built.
                log.exception("leaderboard_mark_failed", board=board)
            finally:
                self._queue.task_done()
