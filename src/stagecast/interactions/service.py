"""Polls (one open per channel, one final vote per user) and reactions (checked, then counted
into the room's next burst by interactions/pulse.py)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.models import User
from stagecast.channels import service as channels
from stagecast.channels.models import Channel
from stagecast.chat.emotes import EMOTES
from stagecast.db.base import new_id
from stagecast.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from stagecast.interactions.models import Poll, PollVote
from stagecast.interactions.schemas import PollChoice, PollCreate, PollOut, Tallies
from stagecast.moderation import service as moderation
from stagecast.money import subscriptions
from stagecast.pagination import PageInfo, PageParams, SortKey, paginate
from stagecast.realtime.bus import channel_room, publish
from stagecast.streams import service as streams
from stagecast.streams.models import Stream, StreamStatus


class PollNotFound(NotFound):
    code, title = "POLL_NOT_FOUND", "Poll not found"


class PollAlreadyActive(Conflict):
    code, title = "POLL_ALREADY_ACTIVE", "This channel already has an active poll"


class PollEnded(Conflict):
    code, title = "POLL_ENDED", "This poll has ended"


class AlreadyVoted(Conflict):
    code, title = "ALREADY_VOTED", "You already voted in this poll"


class InvalidChoice(ValidationFailed):
    code, title = "INVALID_CHOICE", "This poll has no such choice"


class SubscribersOnly(PermissionDenied):
    code, title = "SUBSCRIBERS_ONLY", "Only the channel's subscribers can vote in this poll"


class ReactionNotAllowed(ValidationFailed):
    code, title = "REACTION_NOT_ALLOWED", "This channel does not take that reaction"


class ReactionsOff(PermissionDenied):
    code, title = "REACTIONS_DISABLED", "Reactions are off in this channel"


class StreamNotLive(Conflict):
    code, title = "STREAM_NOT_LIVE", "The stream is not live"


# --- polls ------------------------------------------------------------------------------------


def is_open(poll: Poll, now: datetime) -> bool:
    """Open until ended early or until its time ran out (whether or not the sweep ran yet)."""
    return poll.ended_at is None and poll.ends_at > now


async def count_votes(session: AsyncSession, poll: Poll) -> list[int]:
    """The votes per choice, counted from the votes themselves (exact, whatever ran at once)."""
    return (await count_votes_of(session, [poll]))[poll.id]


async def count_votes_of(session: AsyncSession, polls: list[Poll]) -> dict[uuid.UUID, list[int]]:
    """The votes per choice of several polls, in one query (ended polls keep theirs)."""
    counts = {p.id: list(p.final_tallies or [0] * len(p.choices)) for p in polls}
    running = [p.id for p in polls if p.final_tallies is None]
    if running:
        rows = await session.execute(
            select(PollVote.poll_id, PollVote.choice, func.count())
            .where(PollVote.poll_id.in_(running))
            .group_by(PollVote.poll_id, PollVote.choice)
        )
        for poll_id, choice, votes in rows.all():
            counts[poll_id][choice] = int(votes)
    return counts


def present_choices(poll: Poll, counts: list[int]) -> tuple[list[PollChoice], int]:
    total = sum(counts)
    choices = [
        PollChoice(
            index=index,
            title=title,
            votes=counts[index],
            percent=round(100 * counts[index] / total, 1) if total else 0.0,
        )
        for index, title in enumerate(poll.choices)
    ]
    return choices, total


def present_poll(
    poll: Poll, counts: list[int], *, now: datetime, my_vote: int | None = None
) -> PollOut:
    choices, total = present_choices(poll, counts)
    open_now = is_open(poll, now)
    ended_at = poll.ended_at or (None if open_now else poll.ends_at)
    reason = poll.end_reason or (None if open_now else "expired")
    return PollOut(
        id=poll.id,
        channel_id=poll.channel_id,
        stream_id=poll.stream_id,
        question=poll.question,
        choices=choices,
        total_votes=total,
        subscribers_only=poll.subscribers_only,
        duration_seconds=poll.duration_seconds,
        status="active" if open_now else "ended",
        end_reason=reason,
        seconds_left=max(0, int((poll.ends_at - now).total_seconds())) if open_now else 0,
        created_at=poll.created_at,
        ends_at=poll.ends_at,
        ended_at=ended_at,
        my_vote=my_vote,
    )


def tallies_of(poll: Poll, counts: list[int]) -> Tallies:
    choices, total = present_choices(poll, counts)
    return Tallies(
        poll_id=poll.id,
        channel_id=poll.channel_id,
        stream_id=poll.stream_id,
        choices=choices,
        total_votes=total,
    )


async def get_poll_row(session: AsyncSession, poll_id: uuid.UUID) -> Poll:
    poll = await session.get(Poll, poll_id)
    if poll is None:
        raise PollNotFound()
    return poll


async def vote_of(session: AsyncSession, poll: Poll, user: User | None) -> int | None:
    if user is None:
        return None
    return await session.scalar(
        select(PollVote.choice).where(PollVote.poll_id == poll.id, PollVote.user_id == user.id)
    )


async def get_poll(
    session: AsyncSession, *, poll_id: uuid.UUID, viewer: User | None, now: datetime
) -> PollOut:
    poll = await get_poll_row(session, poll_id)
    counts = await count_votes(session, poll)
    return present_poll(poll, counts, now=now, my_vote=await vote_of(session, poll, viewer))


async def _target(session: AsyncSession, data: PollCreate) -> tuple[Channel, Stream | None]:
    if data.stream_id is not None:
        stream = await streams.get_stream(session, data.stream_id)
        return await session.get_one(Channel, stream.channel_id), stream
    if data.channel_id is None:
        raise ValidationFailed("Name the channel_id or the stream_id")
    channel = await channels.get_channel(session, data.channel_id)
    return channel, await streams.live_stream_of(session, channel.id)


async def _finish(
    session: AsyncSession, poll: Poll, *, reason: str, at: datetime, by: User | None = None
) -> bool:
    """End an open poll (once, whoever gets there first) and tell its room the final tallies.

    The poll's row is locked before the votes are counted (PostgreSQL; SQLite's writer is one
    at a time anyway): a batch of votes that checked the poll open (`write_votes`, which locks
    it FOR SHARE) commits before the count, or finds the poll ended."""
    await session.execute(select(Poll.id).where(Poll.id == poll.id).with_for_update())
    counts = await count_votes(session, poll)
    ended = await session.execute(
        update(Poll)
        .where(Poll.id == poll.id, Poll.ended_at.is_(None))
        .values(
            ended_at=at,
            end_reason=reason,
            ended_by_id=by.id if by else None,
            final_tallies=counts,
        )
        .execution_options(synchronize_session=False)
    )
    if ended.rowcount != 1:  # type: ignore[attr-defined]
        return False
    poll.ended_at, poll.end_reason, poll.final_tallies = at, reason, counts
    poll.ended_by_id = by.id if by else None
    payload = present_poll(poll, counts, now=at).model_dump(mode="json")
    publish(session, "poll:ended", payload, rooms=(channel_room(poll.channel_id),))
    return True


async def create_poll(
    session: AsyncSession, *, actor: User, data: PollCreate, now: datetime
) -> PollOut:
    """Start a poll in a channel, by its owner or a moderator; one open poll per channel."""
    channel, stream = await _target(session, data)
    await moderation.ensure_moderator(session, channel, actor)
    current = await session.scalar(
        select(Poll).where(Poll.channel_id == channel.id, Poll.ended_at.is_(None))
    )
    if current is not None:
        if is_open(current, now):
            raise PollAlreadyActive(f"End poll {current.id} first, or wait for it to end")
        await _finish(session, current, reason="expired", at=current.ends_at)
    poll = Poll(
        channel_id=channel.id,
        stream_id=stream.id if stream else None,
        creator_id=actor.id,
        question=data.question,
        choices=list(data.choices),
        subscribers_only=data.subscribers_only,
        duration_seconds=data.duration,
        created_at=now,
        ends_at=now + timedelta(seconds=data.duration),
    )
    try:
        async with session.begin_nested():
            session.add(poll)
    except IntegrityError as error:  # another moderator's poll got in first
        raise PollAlreadyActive() from error
    out = present_poll(poll, [0] * len(poll.choices), now=now)
    publish(session, "poll:created", out.model_dump(mode="json"), rooms=(channel_room(channel.id),))
    return out


def _insert_vote(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING: a second vote inserts nothing, in one statement."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(PollVote).on_conflict_do_nothing(index_elements=["poll_id", "user_id"])


def check_vote(poll: Poll, *, choice: int, now: datetime) -> None:
    """Whether the poll takes this vote now: open, and the choice on it. Votes are final: the
    running tallies are public, and a vote that could move would let viewers game them
    (Twitch's polls take one vote too). `write_votes` tells a second vote apart."""
    if not is_open(poll, now):
        raise PollEnded()
    if choice >= len(poll.choices):
        raise InvalidChoice(f"Choose 0 to {len(poll.choices) - 1}")


async def check_voter(
    session: AsyncSession, poll: Poll, *, user_id: uuid.UUID, now: datetime
) -> None:
    """A subscribers-only poll takes the votes of the channel's subscribers (and its owner)."""
    if not poll.subscribers_only:
        return
    channel = await session.get_one(Channel, poll.channel_id)
    if channel.owner_id != user_id and not await subscriptions.active_subscription(
        session, channel_id=poll.channel_id, user_id=user_id, now=now
    ):
        raise SubscribersOnly()


@dataclass(frozen=True, slots=True)
class Ballot:
    """A checked vote waiting to be written."""

    poll_id: uuid.UUID
    user_id: uuid.UUID
    choice: int
    cast_at: datetime


async def write_votes(
    session: AsyncSession, ballots: Sequence[Ballot]
) -> list[type[Conflict] | None]:
    """Write checked votes in one statement; for each, None (counted), `AlreadyVoted` (the
    user's vote was in already) or `PollEnded` (it ended after the check). The polls' rows
    are locked FOR SHARE first, so an end (`_finish`, FOR UPDATE) counts these or refuses them."""
    ids = sorted({b.poll_id for b in ballots})
    polls = {
        p.id: p
        for p in await session.scalars(
            select(Poll).where(Poll.id.in_(ids)).order_by(Poll.id).with_for_update(read=True)
        )
    }

    def still_open(ballot: Ballot) -> bool:
        poll = polls.get(ballot.poll_id)
        return poll is not None and poll.ended_at is None and poll.ends_at > ballot.cast_at

    rows, seen = [], set()
    for ballot in ballots:
        key = (ballot.poll_id, ballot.user_id)
        if still_open(ballot) and key not in seen:
            seen.add(key)
            row = {"id": new_id(), "poll_id": ballot.poll_id, "user_id": ballot.user_id}
            rows.append({**row, "choice": ballot.choice, "created_at": ballot.cast_at})
    inserted: set[tuple[uuid.UUID, uuid.UUID]] = set()
    if rows:
        statement = _insert_vote(session.get_bind().dialect.name).values(rows)
        returned = await session.execute(statement.returning(PollVote.poll_id, PollVote.user_id))
        inserted = {(poll_id, user_id) for poll_id, user_id in returned.all()}
    outcomes: list[type[Conflict] | None] = []
    for ballot in ballots:
        key = (ballot.poll_id, ballot.user_id)
        if not still_open(ballot):
            outcomes.append(PollEnded)
        elif key in inserted:
            inserted.discard(key)  # the same vote twice in one batch: the second is a repeat
            outcomes.append(None)
        else:
            outcomes.append(AlreadyVoted)
    return outcomes


async def end_poll(
    session: AsyncSession, *, actor: User, poll_id: uuid.UUID, now: datetime
) -> PollOut:
    poll = await get_poll_row(session, poll_id)
    channel = await session.get_one(Channel, poll.channel_id)
    await moderation.ensure_moderator(session, channel, actor)
    if not is_open(poll, now) or not await _finish(session, poll, reason="ended", at=now, by=actor):
        raise PollEnded()
    return present_poll(poll, list(poll.final_tallies or []), now=now)


async def due_polls(session: AsyncSession, *, now: datetime) -> list[uuid.UUID]:
    """Polls whose time ran out that nobody ended yet (the sweep ends them)."""
    rows = await session.scalars(
        select(Poll.id).where(Poll.ended_at.is_(None), Poll.ends_at <= now).limit(500)
    )
    return list(rows.all())


async def end_due(session: AsyncSession, poll_ids: list[uuid.UUID]) -> int:
    """End these expired polls (each once across nodes) and tell their rooms."""
    ended = 0
    for poll_id in poll_ids:
        poll = await session.get(Poll, poll_id)
        if poll is not None and poll.ended_at is None:
            ended += await _finish(session, poll, reason="expired", at=poll.ends_at)
    return ended


async def channel_polls(
    session: AsyncSession, *, channel: Channel, status: str, params: PageParams, now: datetime
) -> tuple[list[PollOut], PageInfo]:
    """A channel's polls, newest first, with their tallies."""
    query = select(Poll).where(Poll.channel_id == channel.id)
    if status == "active":
        query = query.where(Poll.ended_at.is_(None), Poll.ends_at > now)
    elif status == "ended":
        query = query.where((Poll.ended_at.is_not(None)) | (Poll.ends_at <= now))
    rows, info = await paginate(
        session, query, keys=[SortKey(Poll.id, lambda p: p.id)], params=params
    )
    counts = await count_votes_of(session, rows)
    return [present_poll(p, counts[p.id], now=now) for p in rows], info


# --- reactions --------------------------------------------------------------------------------


def reaction_code(emoji: str) -> str | None:
    """The emote code a reaction names: the code itself, or the emoji that code shows."""
    if emoji in EMOTES:
        return emoji
    for code, glyph in EMOTES.items():
        if emoji in (glyph, glyph.rstrip("\ufe0f")):
            return code
    return None


def allowed_reactions(channel: Channel) -> frozenset[str] | None:
    """The codes this channel takes, or None when reactions are off."""
    settings = channels.settings_of(channel).reactions
    if not settings.enabled:
        return None
    return frozenset(settings.allowed or EMOTES)


async def reaction_target(
    session: AsyncSession, *, stream_id: uuid.UUID | None, channel_id: uuid.UUID
) -> tuple[frozenset[str] | None, uuid.UUID | None]:
    """What a reaction to a channel needs from the database: its set and its live stream."""
    channel = await session.get(Channel, channel_id)
    if channel is None:
        raise channels.ChannelNotFound()
    live = stream_id
    if (
        live is None
        or (stream := await session.get(Stream, live)) is None
        or (stream.status != StreamStatus.LIVE.value)
    ):
        found = await streams.live_stream_of(session, channel_id)
        live = found.id if found else None
    return allowed_reactions(channel), live


def check_reaction(allowed: frozenset[str] | None, emoji: str) -> str:
    if allowed is None:
        raise ReactionsOff()
    code = reaction_code(emoji)
    if code is None or code not in allowed:
        raise ReactionNotAllowed(f"React with one of: {', '.join(sorted(allowed))}")
    return code
