"""Socket events of the realtime core: joining and leaving a stream's room, in any dialect."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, true
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.models import User
from stagecast.channels.models import Channel
from stagecast.chat.schemas import StreamKeyIn, TargetIn
from stagecast.errors import AppError, ValidationFailed
from stagecast.realtime.dialects import (
    SEED000,
    Dialect,
    DialectName,
    seed004_stream_key,
    stream_error,
)
from stagecast.realtime.server import RealtimeServer, SocketUser, parse_payload
from stagecast.streams.models import Stream


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
    # Both in one statement (chat:send is a hot path); a missing one fails as get_one does.
    row = (
        await session.execute(
            # Two rows by their keys: the join on true says the cross product is meant.
            select(User, Channel)
            .join_from(User, Channel, true())
            .where(User.id == user_id, Channel.id == channel_id)
        )
    ).one_or_none()
    if row is None:
        return await session.get_one(User, user_id), await session.get_one(Channel, channel_id)
    return row[0], row[1]


def is_seed004(data: Any) -> bool:
    """Seed 004's payloads name the stream `streamKey`; seed 000's `streamId`."""
    return isinstance(data, dict) and ("streamKey" in data or "stream_key" in data)


def joined_by_key(user: SocketUser, stream_key: str) -> uuid.UUID | None:
    """The channel a socket joined under this seed 004 `streamKey`, if any."""
    for channel_id, dialect in user.dialects.items():
        if dialect.name == DialectName.SEED004 and dialect.stream_key == stream_key:
            return channel_id
    return None


def register(server: RealtimeServer) -> None:
    async def join(
        sid: str, user: SocketUser, channel: Channel, stream: Stream | None, dialect: Dialect
    ) -> dict[str, Any]:
        count = await server.join_channel(sid, user, channel, stream, dialect=dialect)
        await server.sio.save_session(sid, {"user": user})
        return _joined(channel, stream, count)

    async def tell_seed004(sid: str, data: Any, error: AppError) -> None:
        # Seed 004's viewers use no acks: they wait for `stream-error` instead.
        if is_seed004(data):
            told = stream_error(
                error, stream_key=seed004_stream_key(data), invalid="STREAM_NOT_FOUND"
            )
            await server.sio.emit("stream-error", told, to=sid)

    @server.on("stream:join", model=TargetIn)
    async def stream_join(sid: str, user: SocketUser, payload: TargetIn) -> dict[str, Any]:
        channel, stream = await server.resolve_target(
            stream_id=payload.stream_id, channel_id=payload.channel_id
        )
        named = str(payload.stream_id or payload.channel_id)
        # The handshake's dialect (seed 002's clients ask for theirs there); ours by default.
        key = named if user.dialect == DialectName.SEED004 else None
        return await join(sid, user, channel, stream, Dialect(user.dialect, stream_key=key))

    @server.on("join-stream", error_event=tell_seed004)
    async def join_stream(sid: str, user: SocketUser, data: Any) -> dict[str, Any]:
        """Seed 000's `{streamId}` and seed 004's `{streamKey, userId}`: the payload decides."""
        if not is_seed004(data):
            target = parse_payload(TargetIn, data)
            channel, stream = await server.resolve_target(
                stream_id=target.stream_id, channel_id=target.channel_id
            )
            return await join(sid, user, channel, stream, SEED000)
        payload = parse_payload(StreamKeyIn, data)
        key = payload.stream_key
        channel, stream = await server.resolve_reference(key)
        joined = await join(
            sid, user, channel, stream, Dialect(DialectName.SEED004, stream_key=key)
        )
        answer = {
            "streamKey": key,
            "viewerCount": joined["viewer_count"],
            "isLive": joined["is_live"],
        }
        await server.sio.emit("stream-joined", answer, to=sid)
        return joined

    async def leave(sid: str, user: SocketUser, channel_id: uuid.UUID) -> dict[str, Any]:
        await server.leave_channel(sid, user, channel_id)
        await server.sio.save_session(sid, {"user": user})
        return {"channel_id": str(channel_id)}

    @server.on("stream:leave", model=TargetIn)
    async def stream_leave(sid: str, user: SocketUser, payload: TargetIn) -> dict[str, Any]:
        return await leave(sid, user, joined_channel(user, payload))

    @server.on("leave-stream", error_event=tell_seed004)
    async def leave_stream(sid: str, user: SocketUser, data: Any) -> dict[str, Any]:
        if not is_seed004(data):
            return await leave(sid, user, joined_channel(user, parse_payload(TargetIn, data)))
        key = parse_payload(StreamKeyIn, data).stream_key
        channel_id = joined_by_key(user, key)
        if channel_id is None:
            channel, _ = await server.resolve_reference(key)
            channel_id = channel.id
        return await leave(sid, user, channel_id)


def _joined(channel: Channel, stream: Any, count: int) -> dict[str, Any]:
    return {
        "channel_id": str(channel.id),
        "stream_id": str(stream.id) if stream else None,
        "is_live": bool(stream and stream.status == "live"),
        "viewer_count": count,
    }
