"""Socket events of chat: send, delete, clear (with seed 000's names as aliases)."""

from __future__ import annotations

from typing import Any

from stagecast.accounts.models import User
from stagecast.chat import service as chat
from stagecast.chat.schemas import DeleteIn, SendIn, TargetIn
from stagecast.moderation import service as moderation
from stagecast.moderation.models import FlagKind
from stagecast.moderation.service import ChannelRole
from stagecast.realtime.events import actor_and_channel
from stagecast.realtime.server import RealtimeServer, SocketUser


def register(server: RealtimeServer) -> None:
    runtime = server.runtime

    @server.on("chat:send", "send-message", model=SendIn)
    async def send(sid: str, user: SocketUser, payload: SendIn) -> dict[str, Any]:
        watch = runtime.chat_watch
        try:
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
        except moderation.FilteredMessage as refused:
            if watch is not None:  # the refusal is flagged, beside the answer
                watch.refused(
                    FlagKind.BLOCKED_TERM
                    if isinstance(refused, moderation.BlockedTerm)
                    else FlagKind.LINK_SPAM,
                    channel_id=refused.channel_id,
                    stream_id=user.streams.get(refused.channel_id),
                    user_id=refused.user_id,
                    text=refused.body,
                    matched=refused.matched,
                    reason="refused",
                )
            raise
        if watch is not None:  # in memory; writes only what it flags, after this send
            watch.sent(
                channel_id=message.channel_id,
                stream_id=message.stream_id,
                user_id=message.author.id,
                message_id=message.id,
                text=message.body,
                links=[f.url for f in message.fragments if f.type == "link" and f.url],
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
