"""Votes written by group commit: one transaction for every vote that arrived meanwhile.

A poll in a big room takes thousands of votes in its first seconds. Written one transaction
each, they queue for SQLite's single writer (and for PostgreSQL's connections), and each
transaction holds the writer across several turns of a busy event loop: at 5,000 viewers the
queue grew faster than it drained and votes waited tens of seconds for their ack. Here a vote
is checked against what the node knows (the poll, read once per `POLL_CACHE_SECONDS`; the
channel's bans, as reactions see them; a subscription, read, for a subscribers-only poll),
then waits for the next batch; one writer task writes each batch in one INSERT, checking the
polls still open under a lock, and answers every vote in it once the batch has committed, so
an acknowledged vote is a counted one. The first vote after a quiet spell goes alone, at once;
under load, a batch is whatever came in while the previous one was being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from stagecast.cache import Memo
from stagecast.interactions import service as interactions
from stagecast.interactions.models import Poll
from stagecast.moderation.service import UserBanned
from stagecast.runtime import Runtime

log = structlog.get_logger(__name__)

MAX_BATCH = 1000  # ballots per INSERT (five values each: well under SQLite's 32,766)
# A poll's row as the checks read it; its end is checked again when its votes are written.
POLL_CACHE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class _Waiting:
    ballot: interactions.Ballot
    answer: asyncio.Future[None]


class BallotBox:
    """One per app: checks votes, writes them in batches, answers each after its commit."""

    def __init__(
        self, runtime: Runtime, banned: Callable[[uuid.UUID, uuid.UUID], Awaitable[bool]]
    ) -> None:
        self.runtime = runtime
        self._banned = banned
        self._polls: Memo[uuid.UUID, Poll] = Memo(ttl_seconds=POLL_CACHE_SECONDS)
        self._queue: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions written (tests, metrics)

    async def cast(
        self, *, user_id: uuid.UUID, poll_id: uuid.UUID, choice: int, now: datetime
    ) -> Poll:
        """Check and write one vote; returns once it is committed (raises when refused)."""
        poll = await self._polls.get(poll_id, lambda: self._read_poll(poll_id))
        interactions.check_vote(poll, choice=choice, now=now)
        if await self._banned(poll.channel_id, user_id):
            raise UserBanned()
        if poll.subscribers_only:
            async with self.runtime.db.read_session() as session, session.begin():
                await interactions.check_voter(session, poll, user_id=user_id, now=now)
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(interactions.Ballot(poll.id, user_id, choice, now), answer))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="ballots")
        # Shielded: a caller that goes away (a dropped socket) leaves its vote to be written.
        await asyncio.shield(answer)
        return poll

    async def _read_poll(self, poll_id: uuid.UUID) -> Poll:
        async with self.runtime.db.read_session() as session, session.begin():
            return await interactions.get_poll_row(session, poll_id)

    def forget(self, poll_id: uuid.UUID) -> None:
        """An end on this node is seen by the next vote at once (others within the cache)."""
        self._polls.forget(poll_id)

    async def _write_all(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                async with self.runtime.db.session() as session, session.begin():
                    outcomes = await interactions.write_votes(session, [w.ballot for w in batch])
            except Exception as error:  # every vote of the batch is told; none was counted
                log.exception("votes_not_written", votes=len(batch))
                for waiting in batch:
                    _answer(waiting.answer, error)
                continue
            self.batches += 1
            for waiting, refused in zip(batch, outcomes, strict=True):
                _answer(waiting.answer, refused() if refused is not None else None)

    async def stop(self) -> None:
        """Let the batch being written finish (its votes are answered), at shutdown."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer


def _answer(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
        # Read here too: a caller that went away must not leave "exception never retrieved".
        future.add_done_callback(lambda f: f.exception())
