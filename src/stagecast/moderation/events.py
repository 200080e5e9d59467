"""Socket events of moderation: ban, timeout, unban and chat modes, as in the HTTP API."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import AliasChoices, Field, StrictStr

from stagecast.channels.schemas import ChatSettingsUpdate
from stagecast.chat.schemas import TargetIn
from stagecast.moderation import service as moderation
from stagecast.moderation.schemas import MAX_TIMEOUT_SECONDS
from stagecast.realtime.events import actor_and_channel
from stagecast.realtime.server import RealtimeServer, SocketUser


class BanIn(TargetIn):
    user_id: uuid.UUID | None = Field(
        default=None, validation_alias=AliasChoices("userId", "user_id")
    )
    username: StrictStr | None = Field(default=None, max_length=32)
    reason: StrictStr | None = Field(default=None, max_length=500)


class TimeoutIn(BanIn):
    duration: int = Field(ge=1, le=MAX_TIMEOUT_SECONDS, description="seconds")


class UnbanIn(TargetIn):
    user_id: uuid.UUID = Field(validation_alias=AliasChoices("userId", "user_id"))


class ModeIn(TargetIn):
    slow_mode_seconds: int | None = Field(default=None, ge=0, le=3600)
    followers_only_minutes: int | None = Field(default=None, ge=0, le=60 * 24 * 90)
    subscribers_only: bool | None = None
    emote_only: bool | None = None
    # followers_only_minutes: null switches it off, so "not sent" must differ from null.
    followers_only_off: bool = False


def register(server: RealtimeServer) -> None:
    runtime = server.runtime

    async def ban(user: SocketUser, payload: BanIn, duration: int | None) -> dict[str, Any]:
        async with runtime.db.session() as session, session.begin():
            actor, channel = await actor_and_channel(session, user, payload)
            result = await moderation.ban_user(
                session,
                actor=actor,
                channel=channel,
                user_id=payload.user_id,
                username=payload.username,
                duration_seconds=duration,
                reason=payload.reason,
            )
        return {"ban": result.model_dump(mode="json")}

    @server.on("chat:ban", model=BanIn)
    async def chat_ban(sid: str, user: SocketUser, payload: BanIn) -> dict[str, Any]:
        return await ban(user, payload, None)

    @server.on("chat:timeout", model=TimeoutIn)
    async def chat_timeout(sid: str, user: SocketUser, payload: TimeoutIn) -> dict[str, Any]:
        return await ban(user, payload, payload.duration)

    @server.on("chat:unban", model=UnbanIn)
    async def chat_unban(sid: str, user: SocketUser, payload: UnbanIn) -> dict[str, Any]:
        async with runtime.db.session() as session, session.begin():
            actor, channel = await actor_and_channel(session, user, payload)
            await moderation.unban_user(
                session, actor=actor, channel=channel, user_id=payload.user_id
            )
        return {"user_id": str(payload.user_id)}

    @server.on("chat:mode", model=ModeIn)
    async def chat_mode(sid: str, user: SocketUser, payload: ModeIn) -> dict[str, Any]:
        changes = payload.model_dump(
            exclude_unset=True, exclude={"stream_id", "channel_id", "followers_only_off"}
        )
        if payload.followers_only_off:
            changes["followers_only_minutes"] = None
        async with runtime.db.session() as session, session.begin():
            actor, channel = await actor_and_channel(session, user, payload)
            modes = await moderation.set_chat_modes(
                session,
                actor=actor,
                channel=channel,
                changes=ChatSettingsUpdate.model_validate(changes),
            )
        return {"modes": modes.model_dump(mode="json", exclude={"blocked_terms"})}
