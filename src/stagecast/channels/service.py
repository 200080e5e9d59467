"""Channels, their settings, follows (of channels and of users), stats and analytics."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast import search
from stagecast.accounts.models import Role, User
from stagecast.accounts.schemas import UserPublic
from stagecast.channels.models import Category, Channel, ChannelFollow, UserFollow
from stagecast.channels.schemas import (
    RESERVED_SLUGS,
    SLUG_PATTERN,
    ChannelAnalytics,
    ChannelCreate,
    ChannelOut,
    ChannelOwner,
    ChannelSettings,
    ChannelSettingsUpdate,
    ChannelUpdate,
    Follower,
    FollowerPoint,
    FollowState,
    StreamStatsRow,
    UserStats,
)
from stagecast.db.base import utcnow
from stagecast.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from stagecast.leaderboards import events as leaderboard_events
from stagecast.pagination import PageInfo, PageParams, SortKey, paginate_rows
from stagecast.patches import load_stored, merge_patch
from stagecast.realtime.bus import channel_room, publish
from stagecast.streams.models import Stream, StreamStatus


class ChannelNotFound(NotFound):
    code, title = "CHANNEL_NOT_FOUND", "Channel not found"


class ChannelExists(Conflict):
    code, title = "CHANNEL_EXISTS", "You already have a channel"


class SlugTaken(Conflict):
    code, title = "SLUG_TAKEN", "This channel name is taken"


class UnknownCategory(ValidationFailed):
    code = "UNKNOWN_CATEGORY"


class CannotFollowSelf(ValidationFailed):
    code, title = "CANNOT_FOLLOW_SELF", "You cannot follow yourself"


def _channel_document(channel: Channel, owner: User) -> tuple[str, str]:
    body = " ".join(
        filter(None, [channel.slug, owner.username, channel.category, channel.description])
    )
    return channel.name, body


async def _index_channel(session: AsyncSession, channel: Channel, owner: User) -> None:
    title, body = _channel_document(channel, owner)
    await search.index_document(session, kind="channel", ref_id=channel.id, title=title, body=body)


async def ensure_category(session: AsyncSession, slug: str | None) -> None:
    if (
        slug is not None
        and await session.scalar(select(Category.id).where(Category.slug == slug)) is None
    ):
        raise UnknownCategory(
            f"No category '{slug}'",
            errors=[
                {
                    "field": "category",
                    "in": "body",
                    "message": "unknown category",
                    "type": "value_error",
                }
            ],
        )


def ensure_owner(actor: User, channel: Channel) -> None:
    """Only the channel's owner (or an admin) changes a channel."""
    if channel.owner_id != actor.id and actor.role_enum is not Role.ADMIN:
        raise PermissionDenied("Only the channel's owner can do this")


async def _flush_slug(session: AsyncSession) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        message = str(exc.orig).lower()
        raise (ChannelExists() if "owner" in message else SlugTaken()) from exc


async def create_channel(session: AsyncSession, *, owner: User, data: ChannelCreate) -> Channel:
    """Create the user's channel (one each); its owner becomes a creator."""
    if await session.scalar(select(Channel.id).where(Channel.owner_id == owner.id)) is not None:
        raise ChannelExists()
    if await session.scalar(select(Channel.id).where(Channel.slug == data.slug)) is not None:
        raise SlugTaken()
    await ensure_category(session, data.category)
    channel = Channel(
        owner_id=owner.id,
        slug=data.slug,
        name=data.name or owner.display_name,
        description=data.description,
        category=data.category,
        language=data.language,
        is_mature=data.is_mature,
        settings={},
    )
    session.add(channel)
    await _flush_slug(session)
    if owner.role_enum is Role.VIEWER:
        owner.role = Role.CREATOR.value
    await _index_channel(session, channel, owner)
    return channel


async def ensure_channel(session: AsyncSession, *, owner: User) -> Channel:
    """The user's channel, created from their username when they have none yet."""
    channel = await session.scalar(select(Channel).where(Channel.owner_id == owner.id))
    if channel is not None:
        return channel
    base = owner.username_key.replace("_", "-")
    base = base if SLUG_PATTERN.fullmatch(base) and base not in RESERVED_SLUGS else f"{base}-tv"
    slug, suffix = base[:32], 1
    while await session.scalar(select(Channel.id).where(Channel.slug == slug)) is not None:
        suffix += 1
        slug = f"{base[:28]}-{suffix}"
    return await create_channel(
        session,
        owner=owner,
        data=ChannelCreate.model_construct(
            slug=slug,
            name=None,
            description=None,
            category=None,
            language="en",
            is_mature=False,
        ),
    )


async def get_channel(session: AsyncSession, ref: str | uuid.UUID) -> Channel:
    """A channel by id or slug."""
    query: Select[Channel]
    try:
        channel_id = ref if isinstance(ref, uuid.UUID) else uuid.UUID(ref)
        query = select(Channel).where(Channel.id == channel_id)
    except ValueError:
        query = select(Channel).where(Channel.slug == str(ref).lower())
    channel = await session.scalar(query)
    if channel is None:
        raise ChannelNotFound()
    return channel


async def channel_of_owner(session: AsyncSession, owner_id: uuid.UUID) -> Channel | None:
    return await session.scalar(select(Channel).where(Channel.owner_id == owner_id))


async def live_streams_of(
    session: AsyncSession, channel_ids: list[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """channel id -> its live stream id, for the channels that are live."""
    if not channel_ids:
        return {}
    rows = await session.execute(
        select(Stream.channel_id, Stream.id).where(
            Stream.channel_id.in_(channel_ids), Stream.status == StreamStatus.LIVE.value
        )
    )
    return dict(rows.all())


async def present_channels(session: AsyncSession, channels: list[Channel]) -> list[ChannelOut]:
    """Channels as the API shows them: with their owner and live state."""
    if not channels:
        return []
    owners = {
        u.id: u
        for u in await session.scalars(
            select(User).where(User.id.in_({c.owner_id for c in channels}))
        )
    }
    live = await live_streams_of(session, [c.id for c in channels])
    return [
        ChannelOut.model_validate(
            {
                **{k: getattr(c, k) for k in ChannelOut.model_fields if hasattr(c, k)},
                "owner": ChannelOwner.model_validate(owners[c.owner_id]),
                "is_live": c.id in live,
                "live_stream_id": live.get(c.id),
            }
        )
        for c in channels
    ]


async def present_channel(session: AsyncSession, channel: Channel) -> ChannelOut:
    return (await present_channels(session, [channel]))[0]


async def update_channel(
    session: AsyncSession, *, actor: User, channel: Channel, data: ChannelUpdate
) -> Channel:
    ensure_owner(actor, channel)
    changes: dict[str, Any] = data.model_dump(exclude_unset=True)
    for required in ("slug", "name", "language", "is_mature"):
        if required in changes and changes[required] is None:
            raise ValidationFailed(f"{required} cannot be cleared")
    if (
        "slug" in changes
        and changes["slug"] != channel.slug
        and await session.scalar(select(Channel.id).where(Channel.slug == changes["slug"]))
    ):
        raise SlugTaken()
    if "category" in changes:
        await ensure_category(session, changes["category"])
    for name, value in changes.items():
        setattr(channel, name, str(value) if name.endswith("_url") and value else value)
    await _flush_slug(session)
    owner = await session.get_one(User, channel.owner_id)
    await _index_channel(session, channel, owner)
    return channel


async def delete_channel(session: AsyncSession, *, actor: User, channel: Channel) -> None:
    """Delete a channel with its streams, key and follows."""
    ensure_owner(actor, channel)
    stream_ids = list(
        await session.scalars(select(Stream.id).where(Stream.channel_id == channel.id))
    )
    for stream_id in stream_ids:
        await search.remove_document(session, kind="stream", ref_id=stream_id)
    await search.remove_document(session, kind="channel", ref_id=channel.id)
    await session.delete(channel)
    await session.flush()
    # Its followers go with it: its owner's place among the creators changes.
    leaderboard_events.member_changed(
        session, board=leaderboard_events.FOLLOWERS_BOARD, user_id=channel.owner_id
    )


def settings_of(channel: Channel) -> ChannelSettings:
    """The channel's settings; stored values that no longer validate read as defaults."""
    stored = dict(channel.settings or {})
    stored.update(category=channel.category, language=channel.language, is_mature=channel.is_mature)
    return load_stored(ChannelSettings, stored, what=f"channel {channel.id} settings")


async def update_settings(
    session: AsyncSession, *, actor: User, channel: Channel, data: ChannelSettingsUpdate
) -> ChannelSettings:
    """Apply a settings merge patch (`null` resets a field to its default; nested chat
    settings merge the same way)."""
    ensure_owner(actor, channel)
    changes = data.model_dump(exclude_unset=True)
    merged = merge_patch(settings_of(channel), changes)
    if "category" in changes:
        await ensure_category(session, merged.category)
    channel.category, channel.language, channel.is_mature = (
        merged.category,
        merged.language,
        merged.is_mature,
    )
    channel.settings = merged.model_dump(exclude={"category", "language", "is_mature"})
    await session.flush()
    if "chat" in changes:
        publish(
            session,
            "chat:mode",
            {
                "channel_id": str(channel.id),
                "moderator_id": str(actor.id),
                **merged.chat.model_dump(exclude={"blocked_terms", "rules"}),
            },
            rooms=(channel_room(channel.id),),
        )
    return merged


async def follow_channel(session: AsyncSession, *, user: User, channel: Channel) -> FollowState:
    """Follow a channel; following again changes nothing."""
    if channel.owner_id == user.id:
        raise CannotFollowSelf()
    existing = await session.scalar(
        select(ChannelFollow).where(
            ChannelFollow.channel_id == channel.id, ChannelFollow.user_id == user.id
        )
    )
    if existing is None:
        follow = ChannelFollow(channel_id=channel.id, user_id=user.id)
        try:
            async with session.begin_nested():
                session.add(follow)
                await session.flush()
        except IntegrityError:  # a concurrent follow won; the result is the same
            pass
        else:
            await session.execute(
                update(Channel)
                .where(Channel.id == channel.id)
                .values(follower_count=Channel.follower_count + 1)
            )
            existing = follow
            await session.refresh(channel, ["follower_count"])
            _announce_follow(session, channel, user)
            leaderboard_events.member_changed(
                session, board=leaderboard_events.FOLLOWERS_BOARD, user_id=channel.owner_id
            )
    await session.refresh(channel, ["follower_count"])
    return FollowState(
        following=True,
        follower_count=channel.follower_count,
        followed_at=existing.created_at if existing else None,
    )


FOLLOWER_MILESTONES = (10, 50, 100, 250, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 1_000_000)


def _announce_follow(session: AsyncSession, channel: Channel, user: User) -> None:
    room = (channel_room(channel.id),)
    publish(
        session,
        "follow:new",
        {
            "channel_id": str(channel.id),
            "user_id": str(user.id),
            "username": user.username,
            "display_name": user.display_name,
            "follower_count": channel.follower_count,
        },
        rooms=room,
    )
    if channel.follower_count in FOLLOWER_MILESTONES:
        publish(
            session,
            "milestone:reached",
            {"channel_id": str(channel.id), "kind": "followers", "value": channel.follower_count},
            rooms=room,
        )


async def unfollow_channel(session: AsyncSession, *, user: User, channel: Channel) -> FollowState:
    result = await session.execute(
        delete(ChannelFollow).where(
            ChannelFollow.channel_id == channel.id, ChannelFollow.user_id == user.id
        )
    )
    if result.rowcount:  # type: ignore[attr-defined]
        await session.execute(
            update(Channel)
            .where(Channel.id == channel.id)
            .values(follower_count=Channel.follower_count - 1)
        )
        leaderboard_events.member_changed(
            session, board=leaderboard_events.FOLLOWERS_BOARD, user_id=channel.owner_id
        )
    await session.refresh(channel, ["follower_count"])
    return FollowState(following=False, follower_count=channel.follower_count)


async def follow_user(session: AsyncSession, *, follower: User, followee: User) -> FollowState:
    if follower.id == followee.id:
        raise CannotFollowSelf()
    existing = await session.scalar(
        select(UserFollow).where(
            UserFollow.follower_id == follower.id, UserFollow.followee_id == followee.id
        )
    )
    if existing is None:
        follow = UserFollow(follower_id=follower.id, followee_id=followee.id)
        try:
            async with session.begin_nested():
                session.add(follow)
                await session.flush()
            existing = follow
        except IntegrityError:
            pass
    return FollowState(
        following=True,
        follower_count=await count_user_followers(session, followee.id),
        followed_at=existing.created_at if existing else None,
    )


async def unfollow_user(session: AsyncSession, *, follower: User, followee: User) -> FollowState:
    await session.execute(
        delete(UserFollow).where(
            UserFollow.follower_id == follower.id, UserFollow.followee_id == followee.id
        )
    )
    return FollowState(
        following=False, follower_count=await count_user_followers(session, followee.id)
    )


async def count_user_followers(session: AsyncSession, user_id: uuid.UUID) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(UserFollow).where(UserFollow.followee_id == user_id)
        )
        or 0
    )


async def channel_follow_state(
    session: AsyncSession, *, user: User | None, channel: Channel
) -> FollowState:
    followed_at = None
    if user is not None:
        followed_at = await session.scalar(
            select(ChannelFollow.created_at).where(
                ChannelFollow.channel_id == channel.id, ChannelFollow.user_id == user.id
            )
        )
    return FollowState(
        following=followed_at is not None,
        follower_count=channel.follower_count,
        followed_at=followed_at,
    )


def _follow_keys(model: type[ChannelFollow] | type[UserFollow]) -> list[SortKey]:
    return [SortKey(model.id, lambda row: row[0].id)]


async def _people_page(
    session: AsyncSession,
    model: type[ChannelFollow] | type[UserFollow],
    person: Any,
    condition: Any,
    params: PageParams,
) -> tuple[list[Follower], PageInfo]:
    """A page of (follow, user) rows as Followers, newest follow first."""
    query = select(model, User).join(User, User.id == person).where(condition)
    rows, cursor = await paginate_rows(session, query, keys=_follow_keys(model), params=params)
    return [
        Follower(user=UserPublic.model_validate(someone), followed_at=follow.created_at)
        for follow, someone in rows
    ], cursor


async def list_channel_followers(
    session: AsyncSession, *, channel: Channel, params: PageParams
) -> tuple[list[Follower], PageInfo]:
    return await _people_page(
        session,
        ChannelFollow,
        ChannelFollow.user_id,
        ChannelFollow.channel_id == channel.id,
        params,
    )


async def list_user_followers(
    session: AsyncSession, *, user: User, params: PageParams
) -> tuple[list[Follower], PageInfo]:
    return await _people_page(
        session, UserFollow, UserFollow.follower_id, UserFollow.followee_id == user.id, params
    )


async def list_followed_users(
    session: AsyncSession, *, user: User, params: PageParams
) -> tuple[list[Follower], PageInfo]:
    return await _people_page(
        session, UserFollow, UserFollow.followee_id, UserFollow.follower_id == user.id, params
    )


async def list_followed_channels(
    session: AsyncSession, *, user: User, params: PageParams
) -> tuple[list[tuple[Channel, ChannelFollow]], PageInfo]:
    query = (
        select(ChannelFollow, Channel)
        .join(Channel, Channel.id == ChannelFollow.channel_id)
        .where(ChannelFollow.user_id == user.id)
    )
    rows, cursor = await paginate_rows(
        session, query, keys=_follow_keys(ChannelFollow), params=params
    )
    return [(channel, follow) for follow, channel in rows], cursor


def _duration(stream: Stream) -> int:
    if stream.started_at is None:
        return 0
    end = stream.ended_at or utcnow()
    return max(0, int((end - stream.started_at).total_seconds()))


def _average_viewers(stream: Stream) -> float:
    duration = _duration(stream)
    return round(stream.viewer_seconds / duration, 2) if duration else 0.0


async def user_stats(session: AsyncSession, *, user: User) -> UserStats:
    channel = await channel_of_owner(session, user.id)
    streams: list[Stream] = []
    if channel is not None:
        streams = list(
            await session.scalars(
                select(Stream).where(
                    Stream.channel_id == channel.id, Stream.started_at.is_not(None)
                )
            )
        )
    following_users = await session.scalar(
        select(func.count()).select_from(UserFollow).where(UserFollow.follower_id == user.id)
    )
    following_channels = await session.scalar(
        select(func.count()).select_from(ChannelFollow).where(ChannelFollow.user_id == user.id)
    )
    return UserStats(
        user_id=user.id,
        followers=await count_user_followers(session, user.id),
        following_users=int(following_users or 0),
        following_channels=int(following_channels or 0),
        channel_followers=channel.follower_count if channel else 0,
        streams=len(streams),
        hours_streamed=round(sum(_duration(s) for s in streams) / 3600, 2),
        peak_viewers=max((s.peak_viewer_count for s in streams), default=0),
        member_since=user.created_at,
    )


async def channel_analytics(
    session: AsyncSession, *, actor: User, channel: Channel, days: int
) -> ChannelAnalytics:
    """Followers per day over a window, and per-stream viewer figures (owner or admin)."""
    ensure_owner(actor, channel)
    since = utcnow() - timedelta(days=days)
    follow_times = list(
        await session.scalars(
            select(ChannelFollow.created_at).where(
                ChannelFollow.channel_id == channel.id, ChannelFollow.created_at >= since
            )
        )
    )
    per_day = Counter(t.date() for t in follow_times)
    running = channel.follower_count - len(follow_times)
    points: list[FollowerPoint] = []
    start: date = since.date()
    for offset in range(days + 1):
        day = start + timedelta(days=offset)
        running += per_day.get(day, 0)
        points.append(
            FollowerPoint(date=day, new_followers=per_day.get(day, 0), total_followers=running)
        )
    streams = list(
        await session.scalars(
            select(Stream)
            .where(Stream.channel_id == channel.id, Stream.started_at.is_not(None))
            .order_by(Stream.started_at.desc())
        )
    )
    rows = [
        StreamStatsRow(
            stream_id=s.id,
            title=s.title,
            started_at=s.started_at,
            ended_at=s.ended_at,
            duration_seconds=_duration(s),
            peak_viewers=s.peak_viewer_count,
            average_viewers=_average_viewers(s),
        )
        for s in streams
    ]
    total_seconds = sum(r.duration_seconds for r in rows)
    weighted = sum(s.viewer_seconds for s in streams)
    return ChannelAnalytics(
        channel_id=channel.id,
        follower_count=channel.follower_count,
        followers_over_time=points,
        streams=len(rows),
        hours_streamed=round(total_seconds / 3600, 2),
        peak_viewers=max((r.peak_viewers for r in rows), default=0),
        average_viewers=round(weighted / total_seconds, 2) if total_seconds else 0.0,
        recent_streams=rows[:50],
    )
