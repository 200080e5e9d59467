"""HTTP routes of polls and reactions (the socket commands are in events.py)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from stagecast.accounts.deps import CurrentUser, OptionalUser
from stagecast.channels import service as channels
from stagecast.db.base import utcnow
from stagecast.deps import PageDep, ReadSessionDep, RuntimeDep, SessionDep
from stagecast.errors import problem_responses
from stagecast.interactions import service as interactions
from stagecast.interactions.pulse import pulse_of
from stagecast.interactions.schemas import (
    PollCreate,
    PollOut,
    PollStatusFilter,
    ReactionAccepted,
    ReactionIn,
    VoteIn,
)
from stagecast.pagination import Page, make_page
from stagecast.streams import service as streams

router = APIRouter(tags=["interactions"])


@router.post(
    "/polls",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def create_poll(body: PollCreate, user: CurrentUser, session: SessionDep) -> PollOut:
    """Start a poll (the channel's owner or moderators); `poll:created` goes to the room."""
    async with session.begin():
        return await interactions.create_poll(session, actor=user, data=body, now=utcnow())


@router.get("/polls/{poll_id}", responses=problem_responses(404))
async def get_poll(poll_id: uuid.UUID, user: OptionalUser, session: ReadSessionDep) -> PollOut:
    """A poll with its tallies, the time left and the caller's own vote."""
    async with session.begin():
        return await interactions.get_poll(session, poll_id=poll_id, viewer=user, now=utcnow())


@router.post("/polls/{poll_id}/vote", responses=problem_responses(401, 403, 404, 409, 422))
async def vote(poll_id: uuid.UUID, body: VoteIn, user: CurrentUser, runtime: RuntimeDep) -> PollOut:
    """Vote once (votes are final); the room gets the tallies in its next `poll:voted`. The
    answer comes once the vote is committed (written with the others of its moment, see
    interactions/ballots.py)."""
    now, pulse = utcnow(), pulse_of(runtime)
    poll = await pulse.ballots.cast(user_id=user.id, poll_id=poll_id, choice=body.choice, now=now)
    async with runtime.db.read_session() as session, session.begin():
        counts = await interactions.count_votes(session, poll)
    pulse.voted(poll.id)
    return interactions.present_poll(poll, counts, now=now, my_vote=body.choice)


@router.post("/polls/{poll_id}/end", responses=problem_responses(401, 403, 404, 409))
async def end_poll(poll_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> PollOut:
    """End a poll early (owner or moderators); `poll:ended` carries the final tallies."""
    async with session.begin():
        return await interactions.end_poll(session, actor=user, poll_id=poll_id, now=utcnow())


@router.get("/channels/{channel_ref}/polls", responses=problem_responses(404, 422))
async def channel_polls(
    channel_ref: str,
    session: ReadSessionDep,
    page: PageDep,
    poll_status: Annotated[PollStatusFilter, Query(alias="status")] = "all",
) -> Page[PollOut]:
    """A channel's polls, newest first (its history, and the active one)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_ref)
        rows, info = await interactions.channel_polls(
            session, channel=channel, status=poll_status, params=page, now=utcnow()
        )
    return make_page(rows, info)


@router.post(
    "/reactions",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(401, 403, 404, 409, 422, 429),
)
async def react(
    body: ReactionIn, user: CurrentUser, session: ReadSessionDep, runtime: RuntimeDep
) -> ReactionAccepted:
    """React to a live stream; the room sees it inside the next `reaction:sent` burst."""
    async with session.begin():
        stream = await streams.get_stream(session, body.stream_id)
    return await pulse_of(runtime).react(
        user_id=user.id, channel_id=stream.channel_id, stream_id=stream.id, emoji=body.emoji
    )
