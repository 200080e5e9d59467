"""Votes written by group commit: one transaction for every vote that arrived meanwhile.

A poll in a big room takes thousands of votes in its first seconds. Written one transaction
each, they queue for SQLite's single writer (and for PostgreSQL's connections), and each
transaction holds the writer across several turns of a busy event loop: at 5,000 viewers the
queue grew faster than it drained and votes waited tens of seconds for their ack. Here a vote
is checked on a read session (no write lock), then waits for the next batch; one writer task
writes each batch in one INSERT and answers every vote in it once the batch has committed, so
an acknowledged vote is a counted one. The first vote after a quiet spell goes alone, at once;
under load, a batch is whatever came in while the previous one was being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog

from stagecast.interactions import service as interactions
from stagecast.interactions.models import Poll
from stagecast.runtime import Runtime

log = structlog.get_logger(__name__)

MAX_BATCH = 1000  # ballots per INSERT (five values each: well under SQLite's 32,766)


@dataclass(frozen=True, slots=True)
class _Waiting:
    ballot: interactions.Ballot
    answer: asyncio.Future[None]


class BallotBox:
    """One per app: checks votes, writes them in batches, answers each after its commit."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._queue: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions written (tests, metrics)

    async def cast(
        self, *, user_id: uuid.UUID, poll_id: uuid.UUID, choice: int, now: datetime
    ) -> Poll:
        """Check and write one vote; returns once it is committed (raises when refused)."""
        async with self.runtime.db.read_session() as session, session.begin():
            poll = await interactions.check_vote(
                session, user_id=user_id, poll_id=poll_id, choice=choice, now=now
            )
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(interactions.Ballot(poll.id, user_id, choice, now), answer))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="ballots")
        # Shielded: a caller that goes away (a dropped socket) leaves its vote to be written.
        await asyncio.shield(answer)
        return poll

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
