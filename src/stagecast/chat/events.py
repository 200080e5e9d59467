"""Socket events of chat: send, delete, clear (with seed 000's names as aliases)."""

from __future__ import annotations

from typing import Any

from stagecast.accounts.models import User
from stagecast.chat import service as chat
from stagecast.chat.schemas import DeleteIn, SendIn, TargetIn
from stagecast.moderation import service as moderation
from stagecast.moderation.service import ChannelRole
from stagecast.realtime.events import actor_and_channel
from stagecast.realtime.server import RealtimeServer, SocketUser


def register(server: RealtimeServer) -> None:
    runtime = server.runtime

    @server.on("chat:send", "send-message", model=SendIn)
    async def send(sid: str, user: SocketUser, payload: SendIn) -> dict[str, Any]:
        async with runtime.db.session() as session, session.begin():
            author, channel = await actor_and_channel(session, user, payload)
            role = await moderation.channel_role(session, channel, author)
            if role is ChannelRole.VIEWER:
                # Seed 000: 5 messages per 10 s per user; moderators are not held by it.
                await runtime.limiter.hit("chat", f"user:{author.id}")
            message = await chat.send_message(
                session,
                user=author,
                channel=channel,
                stream_id=user.streams.get(channel.id),
                raw=payload.message,
                reply_to=payload.reply_to,
                role=role,
            )
        return {"message": message.model_dump(mode="json")}

    @server.on("chat:delete", "delete-message", model=DeleteIn)
    async def delete(sid: str, user: SocketUser, payload: DeleteIn) -> dict[str, Any]:
        user_id = user.require_user()
        async with runtime.db.session() as session, session.begin():
            actor = await session.get_one(User, user_id)
            await chat.delete_message(session, actor=actor, message_id=payload.message_id)
        return {"message_id": str(payload.message_id)}

    @server.on("chat:clear", model=TargetIn)
    async def clear(sid: str, user: SocketUser, payload: TargetIn) -> dict[str, Any]:
        async with runtime.db.session() as session, session.begin():
            actor, channel = await actor_and_channel(session, user, payload)
            cleared = await chat.clear_chat(session, actor=actor, channel=channel)
        return {"cleared": cleared}
