"""What a big room hears of its polls and reactions: at most one event of each a window.

Votes and reactions arrive by the thousand a second; the room must not get one event each.
A node marks the polls that got votes and counts the reactions per room and emoji; once a
window (`STAGECAST_INTERACTIONS_WINDOW_MS`, 250 ms) it sends each room one `poll:voted` with
the tallies counted from the database, and one `reaction:sent` burst with the counts.

With Redis, nodes share the window: a node adds its reaction counts to the room's hash, and
only the node that takes the room's window lock (SET NX PX) drains the hash and sends the
burst, so a room gets one burst a window whatever the number of nodes. A node that did not get
the lock keeps the room pending and tries again next window, so no count waits for a reaction
that may never come. The same lock gives each poll one `poll:voted` a window.

The sweep ends polls whose time ran out (`poll:ended` with the final tallies), each once: the
conditional update lets only one node end a poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from redis.exceptions import RedisError
from sqlalchemy import select

from stagecast.cache import Memo
from stagecast.chat.emotes import EMOTES
from stagecast.db.base import utcnow
from stagecast.interactions import service as interactions
from stagecast.interactions.ballots import BallotBox
from stagecast.interactions.models import Poll
from stagecast.interactions.schemas import ReactionAccepted, ReactionBurst, ReactionCount
from stagecast.moderation import service as moderation
from stagecast.realtime.bus import DomainEvent, channel_room
from stagecast.runtime import Runtime

log = structlog.get_logger(__name__)


@dataclass
class _RoomReactions:
    stream_id: uuid.UUID | None
    counts: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class ReactionGate:
    """What a node knows of a channel's reactions, for `reaction_cache_seconds`."""

    allowed: frozenset[str] | None
    stream_id: uuid.UUID | None


class Pulse:
    """One per app: coalesced poll tallies, reaction bursts and the poll sweep."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.interactions
        self.window_seconds = self.settings.window_ms / 1000
        self._voted: set[uuid.UUID] = set()
        self._reactions: dict[uuid.UUID, _RoomReactions] = {}
        # Rooms whose counts went to Redis but whose burst this node did not send yet.
        self._pending: dict[uuid.UUID, uuid.UUID | None] = {}
        # Per channel, for `reaction_cache_seconds`, each read once however many ask at once
        # (5,000 viewers reacting in the same second must not open 5,000 sessions).
        cached = self.settings.reaction_cache_seconds
        self._gates: Memo[uuid.UUID, ReactionGate] = Memo(ttl_seconds=cached)
        self._bans: Memo[uuid.UUID, dict[uuid.UUID, datetime | None]] = Memo(ttl_seconds=cached)
        self._task: asyncio.Task[None] | None = None
        self._last_sweep = 0.0
        self.sent: Counter[str] = Counter()  # events sent by this node, by name (metrics, tests)
        self.ballots = BallotBox(runtime, self.banned)  # votes, written by group commit

    # --- what handlers call -------------------------------------------------------------------

    def voted(self, poll_id: uuid.UUID) -> None:
        self._voted.add(poll_id)

    def reacted(self, channel_id: uuid.UUID, stream_id: uuid.UUID | None, code: str) -> None:
        room = self._reactions.get(channel_id)
        if room is None:
            room = self._reactions[channel_id] = _RoomReactions(stream_id)
        room.counts[code] += 1

    async def react(
        self, *, user_id: uuid.UUID, channel_id: uuid.UUID, stream_id: uuid.UUID | None, emoji: str
    ) -> ReactionAccepted:
        """Check a reaction (the channel's set, its live stream, bans, the per-user limit) and
        count it into the room's next burst."""
        gate = await self.gate(channel_id, stream_id)
        code = interactions.check_reaction(gate.allowed, emoji)
        if gate.stream_id is None:
            raise interactions.StreamNotLive("Reactions go to live streams")
        if await self.banned(channel_id, user_id):
            raise moderation.UserBanned()
        await self.runtime.limiter.hit("reactions", f"user:{user_id}")
        self.reacted(channel_id, gate.stream_id, code)
        return ReactionAccepted(
            stream_id=gate.stream_id, emoji=code, window_ms=self.settings.window_ms
        )

    async def gate(self, channel_id: uuid.UUID, stream_id: uuid.UUID | None) -> ReactionGate:
        """The channel's reaction set and live stream, read at most once per cache period."""

        async def load() -> ReactionGate:
            async with self.runtime.db.read_session() as session, session.begin():
                allowed, live = await interactions.reaction_target(
                    session, stream_id=stream_id, channel_id=channel_id
                )
            return ReactionGate(allowed, live)

        return await self._gates.get(channel_id, load)

    async def banned(self, channel_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Whether the user is banned or timed out there: the channel's bans, read at most
        once per cache period (a ban on this node is seen at once: `forget` drops them)."""

        async def load() -> dict[uuid.UUID, datetime | None]:
            async with self.runtime.db.read_session() as session, session.begin():
                return await moderation.channel_bans(session, channel_id=channel_id, now=utcnow())

        bans = await self._bans.get(channel_id, load)
        if user_id not in bans:
            return False
        until = bans[user_id]
        return until is None or until > utcnow()

    def forget(self, event: DomainEvent) -> None:
        """Bus listener: a ban, timeout or settings change is seen by the next reaction (and
        vote), a poll's end by the next vote."""
        if event.name == "poll:ended":
            self.ballots.forget(uuid.UUID(str(event.payload["id"])))
            return
        channel_id = event.payload.get("channel_id")
        watched = {"chat:ban", "chat:timeout", "chat:unban", "chat:mode"}
        if channel_id is None or event.name not in watched:
            return
        channel = uuid.UUID(str(channel_id))
        self._gates.forget(channel)
        if event.name != "chat:mode":
            self._bans.forget(channel)

    # --- the window ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.settings.background:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="pulse")

    async def stop(self) -> None:
        await self.ballots.stop()  # the votes being written are answered, then marked below
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.window_seconds)
            try:
                await self.flush()
                if time.monotonic() - self._last_sweep >= self.settings.poll_sweep_seconds:
                    self._last_sweep = time.monotonic()
                    await self.sweep()
            except Exception:
                log.exception("pulse_failed")

    async def flush(self) -> None:
        """Send this window's poll tallies and reaction bursts."""
        await self._flush_polls()
        await self._flush_reactions()

    async def sweep(self) -> int:
        """End the polls whose time ran out; the read comes first so that an idle sweep never
        takes the write lock."""
        now = utcnow()
        async with self.runtime.db.read_session() as session, session.begin():
            due = await interactions.due_polls(session, now=now)
        if not due:
            return 0
        async with self.runtime.db.session() as session, session.begin():
            ended = await interactions.end_due(session, due)
        self._voted.difference_update(due)
        return ended

    async def _window_lock(self, what: str, ident: uuid.UUID) -> bool:
        """Whether this node sends `what` for `ident` this window (always, without Redis)."""
        redis = self.runtime.redis
        if redis is None:
            return True
        key = f"{self.runtime.settings.key_prefix}:pulse:{what}:{ident}"
        return bool(await redis.set(key, b"1", nx=True, px=self.settings.window_ms))

    async def _flush_polls(self) -> None:
        if not self._voted:
            return
        wanted, self._voted = self._voted, set()
        sending: list[uuid.UUID] = []
        for poll_id in wanted:
            try:
                mine = await self._window_lock("poll", poll_id)
            except RedisError:
                mine = True  # Redis carries what can be lost: send it ourselves
            if mine:
                sending.append(poll_id)
            else:
                self._voted.add(poll_id)
        if not sending:
            return
        async with self.runtime.db.read_session() as session, session.begin():
            found = await session.scalars(
                select(Poll).where(Poll.id.in_(sending), Poll.ended_at.is_(None))
            )
            polls = list(found.all())
            counts = await interactions.count_votes_of(session, polls)
        tallies = [interactions.tallies_of(poll, counts[poll.id]) for poll in polls]
        for tally in tallies:
            await self._emit("poll:voted", tally.model_dump(mode="json"), tally.channel_id)

    async def _flush_reactions(self) -> None:
        local, self._reactions = self._reactions, {}
        redis = self.runtime.redis
        if redis is None:
            for channel_id, room in local.items():
                await self._burst(channel_id, room.stream_id, room.counts)
            return
        try:
            await self._flush_shared(redis, local)
        except RedisError:
            log.warning("reaction_burst_redis_failed", rooms=len(local))
            for channel_id, room in local.items():
                await self._burst(channel_id, room.stream_id, room.counts)

    async def _flush_shared(self, redis: Any, local: dict[uuid.UUID, _RoomReactions]) -> None:
        prefix = self.runtime.settings.key_prefix
        if local:
            pipe = redis.pipeline(transaction=False)
            for channel_id, room in local.items():
                key = f"{prefix}:reactions:{channel_id}"
                for code, count in room.counts.items():
                    pipe.hincrby(key, code, count)
                pipe.expire(key, 60)
                self._pending[channel_id] = room.stream_id
            await pipe.execute()
        for channel_id, stream_id in list(self._pending.items()):
            if not await self._window_lock("reactions", channel_id):
                continue
            key = f"{prefix}:reactions:{channel_id}"
            pipe = redis.pipeline(transaction=True)
            pipe.hgetall(key)
            pipe.delete(key)
            stored, _ = await pipe.execute()
            del self._pending[channel_id]
            counts = Counter({k.decode(): int(v) for k, v in stored.items()})
            if counts:
                await self._burst(channel_id, stream_id, counts)

    async def _burst(
        self, channel_id: uuid.UUID, stream_id: uuid.UUID | None, counts: Counter[str]
    ) -> None:
        reactions = [
            ReactionCount(emoji=code, fallback=EMOTES.get(code, code), count=count)
            for code, count in counts.most_common()
        ]
        burst = ReactionBurst(
            channel_id=channel_id,
            stream_id=stream_id,
            reactions=reactions,
            total=sum(counts.values()),
            window_ms=self.settings.window_ms,
        )
        await self._emit("reaction:sent", burst.model_dump(mode="json"), channel_id)

    async def _emit(self, name: str, payload: dict[str, Any], channel_id: uuid.UUID) -> None:
        realtime = self.runtime.realtime
        if realtime is None:
            return
        self.sent[name] += 1
        await realtime.bus.emit(name, payload, rooms=(channel_room(channel_id),))


def pulse_of(runtime: Runtime) -> Pulse:
    if runtime.pulse is None:
        raise RuntimeError("the app's pulse is made by create_app")
    return runtime.pulse
