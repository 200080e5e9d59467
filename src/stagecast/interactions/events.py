"""Socket commands of polls and reactions: `poll:vote` and `reaction:send`, each with an ack."""

from __future__ import annotations

from typing import Any

from stagecast.db.base import utcnow
from stagecast.interactions.pulse import pulse_of
from stagecast.interactions.schemas import PollVoteIn, ReactionSendIn
from stagecast.realtime.events import joined_channel
from stagecast.realtime.server import RealtimeServer, SocketUser


def register(server: RealtimeServer) -> None:
    runtime = server.runtime

    @server.on("poll:vote", model=PollVoteIn)
    async def poll_vote(sid: str, user: SocketUser, payload: PollVoteIn) -> dict[str, Any]:
        pulse = pulse_of(runtime)
        poll = await pulse.ballots.cast(
            user_id=user.require_user(),
            poll_id=payload.poll_id,
            choice=payload.choice,
            now=utcnow(),
        )
        pulse.voted(poll.id)
        return {"poll_id": str(poll.id), "choice": payload.choice}

    @server.on("reaction:send", model=ReactionSendIn)
    async def reaction_send(sid: str, user: SocketUser, payload: ReactionSendIn) -> dict[str, Any]:
        user_id = user.require_user()
        channel_id = joined_channel(user, payload)
        accepted = await pulse_of(runtime).react(
            user_id=user_id,
            channel_id=channel_id,
            stream_id=user.streams.get(channel_id),
            emoji=payload.emoji,
        )
        return accepted.model_dump(mode="json")
