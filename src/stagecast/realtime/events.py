"""Socket events of the realtime core: joining and leaving a stream's room."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.models import User
from stagecast.channels.models import Channel
from stagecast.chat.schemas import TargetIn
from stagecast.errors import ValidationFailed
from stagecast.realtime.server import RealtimeServer, SocketUser


def joined_channel(
    user: SocketUser, target: TargetIn, channel_id: uuid.UUID | None = None
) -> uuid.UUID:
    """The joined channel a command is for: the one named, or the only one joined."""
    wanted = channel_id or target.channel_id
    if wanted is None and target.stream_id is not None:
        for joined, stream_id in user.streams.items():
            if stream_id == target.stream_id:
                wanted = joined
        if wanted is None:
            raise ValidationFailed("Join this stream first")
    if wanted is None:
        if len(user.channels) != 1:
            raise ValidationFailed("Join a stream first, or name the one you mean (streamId)")
        return next(iter(user.channels))
    if wanted not in user.channels:
        raise ValidationFailed("Join this stream first")
    return wanted


async def actor_and_channel(
    session: AsyncSession, user: SocketUser, target: TargetIn
) -> tuple[User, Channel]:
    """The signed-in user behind a socket command and the joined channel it is for."""
    user_id = user.require_user()
    channel_id = joined_channel(user, target)
    return await session.get_one(User, user_id), await session.get_one(Channel, channel_id)


def register(server: RealtimeServer) -> None:
    async def join(
        sid: str, user: SocketUser, payload: TargetIn, *, legacy: bool
    ) -> dict[str, Any]:
        channel, stream = await server.resolve_target(
            stream_id=payload.stream_id, channel_id=payload.channel_id
        )
        count = await server.join_channel(sid, user, channel, stream, legacy=legacy)
        await server.sio.save_session(sid, {"user": user})
        return _joined(channel, stream, count)

    @server.on("stream:join", model=TargetIn)
    async def stream_join(sid: str, user: SocketUser, payload: TargetIn) -> dict[str, Any]:
        return await join(sid, user, payload, legacy=False)

    @server.on("join-stream", model=TargetIn)
    async def legacy_join(sid: str, user: SocketUser, payload: TargetIn) -> dict[str, Any]:
        joined = await join(sid, user, payload, legacy=True)
        # Seed 004's viewers wait for this event rather than an ack.
        await server.sio.emit(
            "stream-joined",
            {
                "streamKey": joined["stream_id"] or joined["channel_id"],
                "viewerCount": joined["viewer_count"],
                "isLive": joined["is_live"],
            },
            to=sid,
        )
        return joined

    @server.on("stream:leave", "leave-stream", model=TargetIn)
    async def stream_leave(sid: str, user: SocketUser, payload: TargetIn) -> dict[str, Any]:
        channel_id = joined_channel(user, payload)
        await server.leave_channel(sid, user, channel_id)
        await server.sio.save_session(sid, {"user": user})
        return {"channel_id": str(channel_id)}


def _joined(channel: Channel, stream: Any, count: int) -> dict[str, Any]:
    return {
        "channel_id": str(channel.id),
        "stream_id": str(stream.id) if stream else None,
        "is_live": bool(stream and stream.status == "live"),
        "viewer_count": count,
    }
