"""Channel moderation: moderators, bans and timeouts, chat modes, and who may send what."""

from __future__ import annotations

import enum
import math
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts import service as accounts
from stagecast.accounts.models import Role, User
from stagecast.accounts.schemas import UserPublic
from stagecast.channels import service as channels
from stagecast.channels.models import Channel, ChannelFollow
from stagecast.channels.schemas import ChatSettings, ChatSettingsUpdate
from stagecast.chat.models import ChatMessage
from stagecast.db.base import utcnow
from stagecast.errors import AppError, Conflict, PermissionDenied, ValidationFailed
from stagecast.moderation.models import ChannelBan, ChannelModerator
from stagecast.moderation.schemas import BanOut, ModeratorOut
from stagecast.money import subscriptions
from stagecast.pagination import PageInfo, PageParams, SortKey, paginate_rows
from stagecast.patches import merge_patch
from stagecast.realtime.bus import channel_room, publish

PURGE_WINDOW = timedelta(hours=24)


class ChannelRole(enum.StrEnum):
    """What a user is in a channel's chat, from most to least powerful."""

    OWNER = "owner"
    STAFF = "staff"  # platform admins and moderators
    MODERATOR = "moderator"
    VIEWER = "viewer"


class ModeratorRequired(PermissionDenied):
    code, title = "MODERATOR_REQUIRED", "Only the channel's moderators can do this"


class UserBanned(PermissionDenied):
    code, title = "USER_BANNED", "You are banned from this chat"


class UserTimedOut(PermissionDenied):
    code, title = "USER_TIMED_OUT", "You are timed out in this chat"


class ChatRestricted(PermissionDenied):
    code, title = "CHAT_RESTRICTED", "This chat is restricted"


class SlowMode(AppError):
    status, code, title = 429, "SLOW_MODE", "Slow mode is on"


class FilteredMessage(ValidationFailed):
    """A message a channel's filter refused; what the automatic flags need to know of it."""

    def __init__(
        self, *, channel_id: uuid.UUID, user_id: uuid.UUID, body: str, matched: str | list[str]
    ) -> None:
        super().__init__()
        self.channel_id, self.user_id, self.body, self.matched = channel_id, user_id, body, matched


class BlockedTerm(FilteredMessage):
    code, title = "BLOCKED_TERM", "The message contains a term this channel blocks"


class LinksNotAllowed(FilteredMessage):
    code, title = "LINKS_NOT_ALLOWED", "This channel's chat does not allow links"


async def channel_role(session: AsyncSession, channel: Channel, user: User) -> ChannelRole:
    if channel.owner_id == user.id:
        return ChannelRole.OWNER
    if user.role_enum in (Role.ADMIN, Role.MODERATOR):
        return ChannelRole.STAFF
    appointed = await session.scalar(
        select(ChannelModerator.id).where(
            ChannelModerator.channel_id == channel.id, ChannelModerator.user_id == user.id
        )
    )
    return ChannelRole.MODERATOR if appointed else ChannelRole.VIEWER


def badges_for(role: ChannelRole, *, subscriber: bool = False) -> list[str]:
    badges = {
        ChannelRole.OWNER: ["broadcaster"],
        ChannelRole.STAFF: ["staff"],
        ChannelRole.MODERATOR: ["moderator"],
        ChannelRole.VIEWER: [],
    }[role]
    return [*badges, "subscriber"] if subscriber else badges


async def ensure_moderator(session: AsyncSession, channel: Channel, actor: User) -> ChannelRole:
    role = await channel_role(session, channel, actor)
    if role is ChannelRole.VIEWER:
        raise ModeratorRequired()
    return role


def chat_settings(channel: Channel) -> ChatSettings:
    return channels.settings_of(channel).chat


async def active_ban(
    session: AsyncSession, *, channel_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> ChannelBan | None:
    ban = await session.scalar(
        select(ChannelBan).where(ChannelBan.channel_id == channel_id, ChannelBan.user_id == user_id)
    )
    if ban is None or (ban.expires_at is not None and ban.expires_at <= now):
        return None
    return ban


async def channel_bans(
    session: AsyncSession, *, channel_id: uuid.UUID, now: datetime
) -> dict[uuid.UUID, datetime | None]:
    """The users banned (None) or timed out (until when) in a channel at `now`."""
    rows = await session.execute(
        select(ChannelBan.user_id, ChannelBan.expires_at).where(
            ChannelBan.channel_id == channel_id,
            or_(ChannelBan.expires_at.is_(None), ChannelBan.expires_at > now),
        )
    )
    return {user_id: until for user_id, until in rows.all()}  # noqa: C416 - Row pairs


async def check_can_send(
    session: AsyncSession,
    *,
    channel: Channel,
    user: User,
    role: ChannelRole,
    body: str,
    emote_only_body: bool,
    now: datetime,
    links: list[str] | None = None,
) -> None:
    """Raise the reason a user may not send this message now, if there is one (`links`: the
    links in it)."""
    ban = await active_ban(session, channel_id=channel.id, user_id=user.id, now=now)
    if ban is not None and ban.expires_at is None:
        raise UserBanned()
    if ban is not None and ban.expires_at is not None:
        remaining = math.ceil((ban.expires_at - now).total_seconds())
        raise UserTimedOut(
            f"You are timed out for {remaining} more seconds", extra={"retry_after": remaining}
        )
    settings = chat_settings(channel)
    lowered = body.casefold()
    matched = next((term for term in settings.blocked_terms if term in lowered), None)
    if matched is not None:
        raise BlockedTerm(channel_id=channel.id, user_id=user.id, body=body, matched=matched)
    if role is not ChannelRole.VIEWER:
        return  # owner, staff and moderators are not held by chat modes
    if links and not settings.allow_links:
        raise LinksNotAllowed(channel_id=channel.id, user_id=user.id, body=body, matched=links)
    if settings.subscribers_only and not await subscriptions.subscribers_among(
        session, channel_id=channel.id, user_ids=[user.id], now=now
    ):
        raise ChatRestricted("Subscribers-only mode is on: subscribe to chat")
    if settings.followers_only_minutes is not None:
        followed_at = await session.scalar(
            select(ChannelFollow.created_at).where(
                ChannelFollow.channel_id == channel.id, ChannelFollow.user_id == user.id
            )
        )
        needed = timedelta(minutes=settings.followers_only_minutes)
        if followed_at is None or now - followed_at < needed:
            raise ChatRestricted(
                f"Followers-only mode: follow for {settings.followers_only_minutes} minutes first"
            )
    if settings.emote_only and not emote_only_body:
        raise ChatRestricted("Emote-only mode is on")
    if settings.slow_mode_seconds:
        last = await session.scalar(
            select(ChatMessage.created_at)
            .where(ChatMessage.channel_id == channel.id, ChatMessage.user_id == user.id)
            .order_by(ChatMessage.id.desc())
            .limit(1)
        )
        if last is not None and now - last < timedelta(seconds=settings.slow_mode_seconds):
            wait = math.ceil(settings.slow_mode_seconds - (now - last).total_seconds())
            raise SlowMode(f"Slow mode: wait {wait} more seconds", extra={"retry_after": wait})


async def _target_user(
    session: AsyncSession, *, user_id: uuid.UUID | None, username: str | None
) -> User:
    if (user_id is None) == (username is None):
        raise ValidationFailed("Name the user by user_id or by username, not both")
    if user_id is not None:
        return await accounts.get_user(session, user_id)
    return await accounts.get_user_by_username(session, username or "")


async def ban_user(
    session: AsyncSession,
    *,
    actor: User,
    channel: Channel,
    user_id: uuid.UUID | None,
    username: str | None,
    duration_seconds: int | None,
    reason: str | None,
) -> BanOut:
    """Ban (no duration) or time out a user; their recent messages are purged."""
    actor_role = await ensure_moderator(session, channel, actor)
    target = await _target_user(session, user_id=user_id, username=username)
    target_role = await channel_role(session, channel, target)
    if target.id == actor.id:
        raise ValidationFailed("You cannot ban yourself")
    if target_role is ChannelRole.OWNER or (
        target_role is not ChannelRole.VIEWER
        and actor_role not in (ChannelRole.OWNER, ChannelRole.STAFF)
    ):
        raise PermissionDenied("Moderators cannot ban the owner or other moderators")
    now = utcnow()
    expires = now + timedelta(seconds=duration_seconds) if duration_seconds else None
    ban = await session.scalar(
        select(ChannelBan).where(
            ChannelBan.channel_id == channel.id, ChannelBan.user_id == target.id
        )
    )
    if ban is None:
        ban = ChannelBan(channel_id=channel.id, user_id=target.id)
        session.add(ban)
    ban.moderator_id, ban.reason, ban.created_at, ban.expires_at = actor.id, reason, now, expires
    purged = list(
        await session.scalars(
            select(ChatMessage.id).where(
                ChatMessage.channel_id == channel.id,
                ChatMessage.user_id == target.id,
                ChatMessage.deleted_at.is_(None),
                ChatMessage.created_at >= now - PURGE_WINDOW,
            )
        )
    )
    if purged:
        await session.execute(
            update(ChatMessage)
            .where(ChatMessage.id.in_(purged))
            .values(deleted_at=now, deleted_by=actor.id, deleted_reason="purged")
        )
    await session.flush()
    publish(
        session,
        "chat:ban" if expires is None else "chat:timeout",
        {
            "channel_id": str(channel.id),
            "user_id": str(target.id),
            "username": target.username,
            "moderator_id": str(actor.id),
            "reason": reason,
            "duration_seconds": duration_seconds,
            "expires_at": expires.isoformat() if expires else None,
            "purged_message_ids": [str(i) for i in purged],
        },
        rooms=(channel_room(channel.id),),
    )
    return BanOut(
        user=UserPublic.model_validate(target),
        moderator_id=actor.id,
        reason=reason,
        created_at=now,
        expires_at=expires,
    )


async def unban_user(
    session: AsyncSession, *, actor: User, channel: Channel, user_id: uuid.UUID
) -> None:
    await ensure_moderator(session, channel, actor)
    result = await session.execute(
        delete(ChannelBan).where(ChannelBan.channel_id == channel.id, ChannelBan.user_id == user_id)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise Conflict("This user is not banned here")
    publish(
        session,
        "chat:unban",
        {"channel_id": str(channel.id), "user_id": str(user_id), "moderator_id": str(actor.id)},
        rooms=(channel_room(channel.id),),
    )


async def list_bans(
    session: AsyncSession, *, actor: User, channel: Channel, params: PageParams
) -> tuple[list[BanOut], PageInfo]:
    """Active bans and timeouts, newest first (moderators only)."""
    await ensure_moderator(session, channel, actor)
    now = utcnow()
    query = (
        select(ChannelBan, User)
        .join(User, User.id == ChannelBan.user_id)
        .where(
            ChannelBan.channel_id == channel.id,
            (ChannelBan.expires_at.is_(None)) | (ChannelBan.expires_at > now),
        )
    )
    rows, cursor = await paginate_rows(
        session, query, keys=[SortKey(ChannelBan.id, lambda r: r[0].id)], params=params
    )
    return [
        BanOut(
            user=UserPublic.model_validate(user),
            moderator_id=ban.moderator_id,
            reason=ban.reason,
            created_at=ban.created_at,
            expires_at=ban.expires_at,
        )
        for ban, user in rows
    ], cursor


async def add_moderator(
    session: AsyncSession,
    *,
    actor: User,
    channel: Channel,
    user_id: uuid.UUID | None,
    username: str | None,
) -> ModeratorOut:
    """Appoint a moderator (the owner or an admin)."""
    channels.ensure_owner(actor, channel)
    target = await _target_user(session, user_id=user_id, username=username)
    if target.id == channel.owner_id:
        raise ValidationFailed("The owner already moderates their channel")
    existing = await session.scalar(
        select(ChannelModerator).where(
            ChannelModerator.channel_id == channel.id, ChannelModerator.user_id == target.id
        )
    )
    if existing is None:
        existing = ChannelModerator(channel_id=channel.id, user_id=target.id)
        session.add(existing)
        await session.flush()
        publish(
            session,
            "chat:moderator_added",
            {"channel_id": str(channel.id), "user_id": str(target.id), "username": target.username},
            rooms=(channel_room(channel.id),),
        )
    return ModeratorOut(user=UserPublic.model_validate(target), created_at=existing.created_at)


async def remove_moderator(
    session: AsyncSession, *, actor: User, channel: Channel, user_id: uuid.UUID
) -> None:
    channels.ensure_owner(actor, channel)
    await session.execute(
        delete(ChannelModerator).where(
            ChannelModerator.channel_id == channel.id, ChannelModerator.user_id == user_id
        )
    )
    publish(
        session,
        "chat:moderator_removed",
        {"channel_id": str(channel.id), "user_id": str(user_id)},
        rooms=(channel_room(channel.id),),
    )


async def list_moderators(session: AsyncSession, *, channel: Channel) -> list[ModeratorOut]:
    rows = await session.execute(
        select(ChannelModerator, User)
        .join(User, User.id == ChannelModerator.user_id)
        .where(ChannelModerator.channel_id == channel.id)
        .order_by(ChannelModerator.id)
    )
    return [
        ModeratorOut(user=UserPublic.model_validate(user), created_at=mod.created_at)
        for mod, user in rows.all()
    ]


async def set_chat_modes(
    session: AsyncSession, *, actor: User, channel: Channel, changes: ChatSettingsUpdate
) -> ChatSettings:
    """Change chat modes (moderators too, not only the owner); each change is an event."""
    await ensure_moderator(session, channel, actor)
    updated = merge_patch(chat_settings(channel), changes.model_dump(exclude_unset=True))
    stored: dict[str, Any] = dict(channel.settings or {})
    stored["chat"] = updated.model_dump()
    channel.settings = stored
    await session.flush()
    publish(
        session,
        "chat:mode",
        {
            "channel_id": str(channel.id),
            "moderator_id": str(actor.id),
            **updated.model_dump(exclude={"blocked_terms", "rules"}),
        },
        rooms=(channel_room(channel.id),),
    )
    return updated
