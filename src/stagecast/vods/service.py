"""Recordings: written when a recorded stream ends, listed per channel, watched (by whom the
visibility allows, with each viewer's progress), edited, reported, replayed with their chat,
deleted (by the owner or retention) with their media."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.models import Role, User
from stagecast.channels import service as channels
from stagecast.channels.models import Channel
from stagecast.chat import service as chat
from stagecast.db.base import utcnow
from stagecast.errors import NotFound, PermissionDenied, ValidationFailed
from stagecast.media.playlists import RecordedSpan
from stagecast.media.store import MediaStore
from stagecast.moderation import reports
from stagecast.moderation.models import Report, ReportedType
from stagecast.moderation.schemas import ReportCreate
from stagecast.money import subscriptions
from stagecast.pagination import PageInfo, PageParams, SortKey, paginate
from stagecast.streams.models import Stream
from stagecast.vods.models import Visibility, Vod, VodProgress
from stagecast.vods.schemas import ProgressOut, ReplayMessage, VodOut, VodUpdate

# Called with the stream's id before a recording's media is withdrawn: before it leaves the
# store (DELETE, retention), inside the transaction that deletes the row, and when the VOD stops
# being public (PATCH), inside the transaction that changes it. Clips that play the stream's
# segments copy them then (clips.service.detach_clips_of_stream), so that they keep playing.
VodMediaHook = Callable[[AsyncSession, MediaStore, uuid.UUID], Awaitable[object]]


class VodNotFound(NotFound):
    code, title = "VOD_NOT_FOUND", "Recording not found"


class SubscriptionRequired(PermissionDenied):
    code, title = "SUBSCRIPTION_REQUIRED", "This recording is for the channel's subscribers"


async def record_vod(
    session: AsyncSession,
    *,
    stream: Stream,
    duration_seconds: float,
    size_bytes: int,
    playlist_key: str,
    thumbnail_key: str | None,
    renditions: list[str],
    timeline: list[RecordedSpan] | None = None,
) -> Vod:
    """The recording of an ended stream (one per stream: a second call updates it);
    `timeline`: its spans of continuous wall time (chat replay places messages with them)."""
    vod = await session.scalar(select(Vod).where(Vod.stream_id == stream.id))
    if vod is None:
        vod = Vod(stream_id=stream.id, channel_id=stream.channel_id)
        session.add(vod)
    vod.title = stream.title
    vod.duration_seconds = round(duration_seconds, 3)
    vod.size_bytes = size_bytes
    vod.playlist_key = playlist_key
    vod.thumbnail_key = thumbnail_key
    vod.renditions = renditions
    vod.timeline = (
        [[span.offset, span.wall_clock.isoformat(), span.duration] for span in timeline]
        if timeline
        else None
    )
    # A recording made again (recovery after a crash) gets its previews made again too.
    vod.previews_key, vod.previews_failed_at = None, None
    await session.flush()
    return vod


async def get_vod(session: AsyncSession, vod_id: uuid.UUID) -> Vod:
    vod = await session.get(Vod, vod_id)
    if vod is None:
        raise VodNotFound
    return vod


def _is_staff(user: User | None) -> bool:
    return user is not None and user.role_enum.rank >= Role.MODERATOR.rank


async def _owner_of(session: AsyncSession, vod: Vod) -> uuid.UUID:
    channel = await session.get_one(Channel, vod.channel_id)
    return channel.owner_id


async def ensure_watchable(session: AsyncSession, vod: Vod, viewer: User | None) -> None:
    """Public recordings are for everyone; subscribers-only ones for paid-up subscribers;
    private ones (404 to others: their existence is not told) for the owner. The owner and
    platform staff see every one."""
    visibility = Visibility(vod.visibility)
    if visibility is Visibility.PUBLIC or _is_staff(viewer):
        return
    if viewer is not None and viewer.id == await _owner_of(session, vod):
        return
    if visibility is Visibility.PRIVATE:
        raise VodNotFound
    if viewer is None:
        raise SubscriptionRequired("Sign in with a subscription to this channel to watch it")
    subscription = await subscriptions.active_subscription(
        session, channel_id=vod.channel_id, user_id=viewer.id, now=utcnow()
    )
    if subscription is None:
        raise SubscriptionRequired


async def watchable_vod(session: AsyncSession, vod_id: uuid.UUID, viewer: User | None) -> Vod:
    vod = await get_vod(session, vod_id)
    await ensure_watchable(session, vod, viewer)
    return vod


async def stream_media_visibility(session: AsyncSession, stream_id: uuid.UUID) -> Vod | None:
    """The recording whose media a stream's files are, when it is not public (None: the
    files are open to everyone: a live stream, or a public recording)."""
    return await session.scalar(
        select(Vod).where(Vod.stream_id == stream_id, Vod.visibility != Visibility.PUBLIC.value)
    )


async def list_channel_vods(
    session: AsyncSession, *, channel: Channel, viewer: User | None, params: PageParams
) -> tuple[list[Vod], PageInfo]:
    """A channel's recordings the viewer may watch, newest first."""
    query = select(Vod).where(Vod.channel_id == channel.id)
    if not (_is_staff(viewer) or (viewer is not None and viewer.id == channel.owner_id)):
        shown = [Visibility.PUBLIC.value]
        if viewer is not None and await subscriptions.active_subscription(
            session, channel_id=channel.id, user_id=viewer.id, now=utcnow()
        ):
            shown.append(Visibility.SUBSCRIBERS.value)
        query = query.where(Vod.visibility.in_(shown))
    return await paginate(session, query, keys=[SortKey(Vod.id, lambda v: v.id)], params=params)


async def update_vod(
    session: AsyncSession,
    *,
    actor: User,
    vod: Vod,
    data: VodUpdate,
    store: MediaStore,
    hooks: list[VodMediaHook],
) -> Vod:
    """The owner (or an admin) retitles a recording or changes who may watch it (the hooks
    run when it stops being public)."""
    channels.ensure_owner(actor, await session.get_one(Channel, vod.channel_id))
    changes = data.model_dump(exclude_unset=True)
    for name in ("title", "visibility"):
        if name in changes and changes[name] is None:
            raise ValidationFailed(
                f"'{name}' cannot be null",
                errors=[{"field": name, "in": "body", "message": "must not be null"}],
            )
    if data.title is not None:
        vod.title = data.title
    if data.visibility is not None:
        if vod.visibility == Visibility.PUBLIC.value and data.visibility is not Visibility.PUBLIC:
            for hook in hooks:
                await hook(session, store, vod.stream_id)
        vod.visibility = data.visibility.value
    await session.flush()
    return vod


async def get_progress(session: AsyncSession, *, viewer: User, vod: Vod) -> ProgressOut:
    progress = await session.get(VodProgress, (viewer.id, vod.id))
    return ProgressOut(
        vod_id=vod.id,
        position_seconds=progress.position_seconds if progress else 0.0,
        duration_seconds=vod.duration_seconds,
        updated_at=progress.updated_at if progress else None,
    )


async def save_progress(
    session: AsyncSession, *, viewer: User, vod: Vod, position_seconds: float
) -> ProgressOut:
    """Remember where the viewer is; a position past the recording's end is refused."""
    if position_seconds > vod.duration_seconds:
        raise ValidationFailed(
            f"The position is past the recording's end ({vod.duration_seconds:.3f} s)",
            errors=[
                {
                    "field": "position_seconds",
                    "in": "body",
                    "message": f"must be at most {vod.duration_seconds:.3f}",
                }
            ],
        )
    progress = await session.get(VodProgress, (viewer.id, vod.id))
    if progress is None:
        progress = VodProgress(user_id=viewer.id, vod_id=vod.id, position_seconds=0.0)
        session.add(progress)
    progress.position_seconds = round(position_seconds, 3)
    progress.updated_at = utcnow()
    await session.flush()
    return await get_progress(session, viewer=viewer, vod=vod)


async def report_vod(
    session: AsyncSession, *, reporter: User, vod: Vod, data: ReportCreate
) -> tuple[Report, bool]:
    return await reports.file_report(
        session,
        reporter=reporter,
        content_type=ReportedType.VOD,
        content_id=vod.id,
        owner_id=await _owner_of(session, vod),
        reason=data.reason,
        details=data.details,
    )


def spans_of(vod: Vod, began: datetime) -> list[RecordedSpan]:
    """The recording's spans of wall time; one from `began` if none were recorded."""
    spans = []
    for offset, wall, duration in vod.timeline or []:
        moment = datetime.fromisoformat(str(wall))
        spans.append(RecordedSpan(float(str(offset)), moment, float(str(duration))))
    return spans or [RecordedSpan(0.0, began, vod.duration_seconds)]


def offset_of(spans: list[RecordedSpan], moment: datetime) -> float:
    """Where a wall-clock moment is in the recording (a moment in a gap: where it resumes)."""
    offset = 0.0
    for span in spans:
        if moment < span.wall_clock:
            break
        into = (moment - span.wall_clock).total_seconds()
        offset = span.offset + min(into, span.duration)
    return offset


def _wall_from(spans: list[RecordedSpan], offset: float) -> datetime:
    """The first moment whose offset is at least `offset`."""
    for span in spans:
        if offset <= span.offset + span.duration:
            return span.wall_clock + timedelta(seconds=max(0.0, offset - span.offset))
    last = spans[-1]
    return last.wall_clock + timedelta(seconds=offset - last.offset)


def _wall_to(spans: list[RecordedSpan], offset: float) -> datetime:
    """The last moment whose offset is at most `offset`."""
    found = spans[0]
    for span in spans:
        if span.offset <= offset:
            found = span
    return found.wall_clock + timedelta(seconds=max(0.0, offset - found.offset))


async def chat_replay(
    session: AsyncSession,
    *,
    vod: Vod,
    start: float | None,
    end: float | None,
    params: PageParams,
) -> tuple[list[ReplayMessage], PageInfo]:
    """The stream's chat from `start` to `end` seconds into the recording, oldest first,
    each message with its offset into the recording."""
    if start is not None and end is not None and end < start:
        raise ValidationFailed(
            "'to' must not be before 'from'",
            errors=[{"field": "to", "in": "query", "message": "must be at least 'from'"}],
        )
    stream = await session.get_one(Stream, vod.stream_id)
    spans = spans_of(vod, stream.started_at or vod.created_at)
    since = _wall_from(spans, start or 0.0)
    until = _wall_to(spans, end) if end is not None else None
    messages, cursor = await chat.replay(
        session, stream_id=vod.stream_id, since=since, until=until, params=params
    )
    replayed = [
        ReplayMessage(
            **message.model_dump(), offset_seconds=round(offset_of(spans, message.created_at), 3)
        )
        for message in messages
    ]
    return replayed, cursor


async def remove_vod(
    session: AsyncSession, *, vod: Vod, store: MediaStore, hooks: list[VodMediaHook]
) -> str:
    """Delete a recording's row (its progress and previews go with it), after the hooks
    (clips keep their media); returns the store prefix whose files the caller removes once
    the transaction has committed."""
    for hook in hooks:
        await hook(session, store, vod.stream_id)
    prefix = vod.playlist_key.rpartition("/")[0]
    await session.execute(delete(VodProgress).where(VodProgress.vod_id == vod.id))
    await session.delete(vod)
    await session.flush()
    return prefix


async def remove_media(store: MediaStore, prefix: str) -> int:
    """Remove a deleted recording's files; returns how many."""
    return await store.delete_prefix(f"{prefix}/")


def retention_days(channel: Channel, default_days: int) -> int:
    """Days the channel's recordings are kept (0: forever)."""
    days = channels.settings_of(channel).vod_retention_days
    return default_days if days is None else days


async def expired_vods(
    session: AsyncSession, *, default_days: int, now: datetime, limit: int = 100
) -> list[uuid.UUID]:
    """Recordings older than their channel's retention, oldest first."""
    # Retention is at least a day: only recordings older than that can have expired.
    query = (
        select(Vod.id, Vod.created_at, Channel)
        .join(Channel, Channel.id == Vod.channel_id)
        .where(Vod.created_at < now - timedelta(days=1))
        .order_by(Vod.created_at)
    )
    due: list[uuid.UUID] = []
    for vod_id, created_at, channel in (await session.execute(query)).all():
        days = retention_days(channel, default_days)
        if days and created_at < now - timedelta(days=days):
            due.append(vod_id)
            if len(due) >= limit:
                break
    return due


async def needing_previews(
    session: AsyncSession, *, since: datetime, limit: int = 5
) -> list[uuid.UUID]:
    """New recordings without seek previews (older ones get theirs on demand)."""
    query = (
        select(Vod.id)
        .where(
            Vod.previews_key.is_(None),
            Vod.previews_failed_at.is_(None),
            Vod.created_at >= since,
        )
        .order_by(Vod.created_at)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


def media_url(vod: Vod, key: str | None) -> str | None:
    """A key under the recording's prefix as its `/hls/…` address."""
    prefix = vod.playlist_key.rpartition("/")[0]
    if key is None or not key.startswith(f"{prefix}/"):
        return None
    return f"/hls/{vod.stream_id}/{key.removeprefix(f'{prefix}/')}"


def present_vod(vod: Vod) -> VodOut:
    previews = media_url(vod, vod.previews_key)
    return VodOut(
        id=vod.id,
        stream_id=vod.stream_id,
        channel_id=vod.channel_id,
        title=vod.title,
        visibility=Visibility(vod.visibility),
        duration_seconds=vod.duration_seconds,
        size_bytes=vod.size_bytes,
        renditions=list(vod.renditions),
        playlist_url=f"/hls/{vod.stream_id}/master.m3u8",
        thumbnail_url=f"/hls/{vod.stream_id}/thumbnail.jpg" if vod.thumbnail_key else None,
        previews_url=previews,
        preview_sprite_url=previews.rpartition("/")[0] + "/sprite.jpg" if previews else None,
        created_at=vod.created_at,
    )
