"""Streams: scheduling, the live lifecycle the media pipeline drives, tags, stream keys."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast import search
from stagecast.accounts.models import User
from stagecast.channels import service as channels
from stagecast.channels.models import Channel
from stagecast.crypto import SecretBox
from stagecast.db.base import utcnow
from stagecast.errors import AppError, Conflict, NotFound
from stagecast.notifications import service as notifications
from stagecast.pagination import PageInfo, PageParams, SortKey, paginate
from stagecast.realtime.bus import channel_room, publish
from stagecast.streams.models import (
    Stream,
    StreamKey,
    StreamStatus,
    StreamTag,
    StreamViewer,
    Tag,
)
from stagecast.streams.schemas import (
    StreamChannel,
    StreamCreate,
    StreamOut,
    StreamUpdate,
    ViewerOut,
)

STREAM_KEY_PREFIX = "live_"
KEY_PURPOSE = "stream-key"
NEVER = datetime.min.replace(tzinfo=UTC)


class StreamNotFound(NotFound):
    code, title = "STREAM_NOT_FOUND", "Stream not found"


class StreamKeyRejected(AppError):
    status, code, title = 403, "STREAM_KEY_REJECTED", "Unknown or revoked stream key"


class StreamAlreadyEnded(Conflict):
    code, title = "STREAM_ENDED", "This stream has ended"


class ChannelLiveElsewhere(Conflict):
    code, title = "CHANNEL_ALREADY_LIVE", "The channel is live with another stream"


# --- stream keys ---------------------------------------------------------------------------


def _new_key() -> str:
    return f"{STREAM_KEY_PREFIX}{secrets.token_urlsafe(24)}"


async def _store_key(
    session: AsyncSession, box: SecretBox, *, channel: Channel, existing: StreamKey | None
) -> tuple[str, StreamKey]:
    raw = _new_key()
    key_hash = box.lookup_hash(KEY_PURPOSE, raw)
    ciphertext = box.encrypt(KEY_PURPOSE, raw)
    if existing is None:
        existing = StreamKey(channel_id=channel.id, key_hash=key_hash, key_ciphertext=ciphertext)
        session.add(existing)
    else:
        existing.key_hash, existing.key_ciphertext = key_hash, ciphertext
        existing.created_at = utcnow()
    await session.flush()
    return raw, existing


async def find_stream_key(
    session: AsyncSession, box: SecretBox, *, channel: Channel
) -> tuple[str, StreamKey] | None:
    """The channel's stream key decrypted for its owner; None when it has to be made."""
    stored = await session.scalar(select(StreamKey).where(StreamKey.channel_id == channel.id))
    if stored is not None:
        raw = box.decrypt(KEY_PURPOSE, stored.key_ciphertext)
        if raw is not None:
            return raw, stored
    return None


async def get_stream_key(
    session: AsyncSession, box: SecretBox, *, channel: Channel
) -> tuple[str, StreamKey]:
    """The channel's stream key, made on first use; decrypted for its owner."""
    found = await find_stream_key(session, box, channel=channel)
    if found is not None:
        return found
    stored = await session.scalar(select(StreamKey).where(StreamKey.channel_id == channel.id))
    # No key yet, or the server secret changed (old keys cannot be read back): make one.
    return await _store_key(session, box, channel=channel, existing=stored)


async def regenerate_stream_key(
    session: AsyncSession, box: SecretBox, *, channel: Channel
) -> tuple[str, StreamKey]:
    """Replace the key; the old one stops working as soon as this commits."""
    stored = await session.scalar(select(StreamKey).where(StreamKey.channel_id == channel.id))
    return await _store_key(session, box, channel=channel, existing=stored)


async def verify_stream_key(session: AsyncSession, box: SecretBox, raw: str) -> Channel:
    """The channel a publisher's key belongs to; raises StreamKeyRejected otherwise."""
    if not raw.startswith(STREAM_KEY_PREFIX) or len(raw) > 128:
        raise StreamKeyRejected()
    channel = await session.scalar(
        select(Channel)
        .join(StreamKey, StreamKey.channel_id == Channel.id)
        .where(StreamKey.key_hash == box.lookup_hash(KEY_PURPOSE, raw))
    )
    if channel is None:
        raise StreamKeyRejected()
    return channel


# --- streams ---------------------------------------------------------------------------------


async def _set_tags(session: AsyncSession, stream: Stream, tags: list[str]) -> None:
    current = set(
        await session.scalars(select(StreamTag.tag).where(StreamTag.stream_id == stream.id))
    )
    wanted = set(tags)
    if removed := current - wanted:
        await session.execute(
            delete(StreamTag).where(StreamTag.stream_id == stream.id, StreamTag.tag.in_(removed))
        )
    for tag in wanted - current:
        session.add(StreamTag(stream_id=stream.id, tag=tag))
        known = await session.get(Tag, tag)
        if known is None:
            session.add(Tag(name=tag, use_count=1))
        else:
            known.use_count += 1
    await session.flush()


async def tags_of(session: AsyncSession, stream_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    found: dict[uuid.UUID, list[str]] = {i: [] for i in stream_ids}
    if stream_ids:
        rows = await session.execute(
            select(StreamTag.stream_id, StreamTag.tag)
            .where(StreamTag.stream_id.in_(stream_ids))
            .order_by(StreamTag.tag)
        )
        for stream_id, tag in rows.all():
            found[stream_id].append(tag)
    return found


async def _index_stream(session: AsyncSession, stream: Stream, channel: Channel) -> None:
    if stream.status == StreamStatus.ENDED.value:
        await search.remove_document(session, kind="stream", ref_id=stream.id)
        return
    tags = (await tags_of(session, [stream.id]))[stream.id]
    body = " ".join(
        filter(None, [channel.name, channel.slug, stream.category, *tags, stream.description])
    )
    await search.index_document(
        session, kind="stream", ref_id=stream.id, title=stream.title, body=body
    )


async def present_streams(session: AsyncSession, streams: list[Stream]) -> list[StreamOut]:
    """Streams as the API shows them: with channel, host and tags."""
    if not streams:
        return []
    channel_rows = await session.execute(
        select(Channel, User)
        .join(User, User.id == Channel.owner_id)
        .where(Channel.id.in_({s.channel_id for s in streams}))
    )
    owners = {channel.id: (channel, user) for channel, user in channel_rows.all()}
    tags = await tags_of(session, [s.id for s in streams])
    out: list[StreamOut] = []
    for stream in streams:
        channel, host = owners[stream.channel_id]
        values: dict[str, Any] = {
            name: getattr(stream, name)
            for name in StreamOut.model_fields
            if name
            not in {"channel", "host_id", "host_name", "tags", "playback_url", "thumbnail_url"}
        }
        on_air = stream.status != StreamStatus.SCHEDULED.value
        out.append(
            StreamOut(
                **values,
                channel=StreamChannel.model_validate(channel),
                host_id=host.id,
                host_name=host.display_name,
                tags=tags[stream.id],
                # The media pipeline's files (live, then the recording); see docs/media.md.
                playback_url=f"/hls/{stream.id}/master.m3u8" if on_air else None,
                thumbnail_url=f"/hls/{stream.id}/thumbnail.jpg" if on_air else None,
            )
        )
    return out


async def present_stream(session: AsyncSession, stream: Stream) -> StreamOut:
    return (await present_streams(session, [stream]))[0]


async def get_stream(session: AsyncSession, stream_id: uuid.UUID) -> Stream:
    stream = await session.get(Stream, stream_id)
    if stream is None:
        raise StreamNotFound()
    return stream


async def get_stream_and_channel(
    session: AsyncSession, stream_id: uuid.UUID
) -> tuple[Stream, Channel]:
    """A stream and its channel in one statement."""
    row = (
        await session.execute(
            select(Stream, Channel)
            .join(Channel, Channel.id == Stream.channel_id)
            .where(Stream.id == stream_id)
        )
    ).one_or_none()
    if row is None:
        raise StreamNotFound()
    return row[0], row[1]


def _title_for(channel: Channel) -> str:
    template = channels.settings_of(channel).title_template
    return template.replace("{channel}", channel.name)[:140] or channel.name


async def create_stream(session: AsyncSession, *, owner: User, data: StreamCreate) -> Stream:
    """Create (schedule) a stream on the owner's channel, which is made if missing."""
    channel = await channels.ensure_channel(session, owner=owner)
    await channels.ensure_category(session, data.category)
    stream = Stream(
        channel_id=channel.id,
        title=data.title,
        description=data.description,
        category=data.category or channel.category,
        language=data.language or channel.language,
        is_mature=channel.is_mature if data.is_mature is None else data.is_mature,
        status=StreamStatus.SCHEDULED.value,
        scheduled_for=data.scheduled_for,
    )
    session.add(stream)
    await session.flush()
    await _set_tags(session, stream, data.tags)
    await _index_stream(session, stream, channel)
    return stream


class StreamNotLive(Conflict):
    code, title = "STREAM_NOT_LIVE", "This stream is not live"


async def update_stream(
    session: AsyncSession, *, actor: User, stream: Stream, data: StreamUpdate
) -> Stream:
    """Change a stream's details; `status: ended` is checked here and done by the caller
    through the media's one way of ending (LiveMedia.end_stream)."""
    channel = await session.get_one(Channel, stream.channel_id)
    channels.ensure_owner(actor, channel)
    changes = data.model_dump(exclude_unset=True)
    ending = changes.pop("status", None) is not None
    if stream.status == StreamStatus.ENDED.value:
        if ending and not changes:
            return stream  # ending an ended stream again changes nothing
        raise StreamAlreadyEnded()
    if ending and stream.status != StreamStatus.LIVE.value:
        raise StreamNotLive("Only a live stream can be ended; DELETE cancels a scheduled one")
    tags = changes.pop("tags", None)
    if "category" in changes:
        await channels.ensure_category(session, changes["category"])
    for name in ("title", "language", "is_mature"):
        if name in changes and changes[name] is None:
            changes.pop(name)
    for name, value in changes.items():
        setattr(stream, name, value)
    if tags is not None:
        await _set_tags(session, stream, tags)
    await session.flush()
    await _index_stream(session, stream, channel)
    publish(
        session,
        "stream:updated",
        {**_event_payload(stream), "tags": (await tags_of(session, [stream.id]))[stream.id]},
        rooms=(channel_room(channel.id),),
    )
    return stream


async def cancel_or_allow_end(session: AsyncSession, *, actor: User, stream: Stream) -> bool:
    """DELETE's check: a scheduled stream is removed (False); a live or ended one may be
    ended by its owner or an admin (True: LiveMedia.end_stream ends it)."""
    channel = await session.get_one(Channel, stream.channel_id)
    channels.ensure_owner(actor, channel)
    if stream.status == StreamStatus.SCHEDULED.value:
        await search.remove_document(session, kind="stream", ref_id=stream.id)
        await session.delete(stream)
        await session.flush()
        return False
    return True


async def live_stream_of(session: AsyncSession, channel_id: uuid.UUID) -> Stream | None:
    return await session.scalar(
        select(Stream).where(
            Stream.channel_id == channel_id, Stream.status == StreamStatus.LIVE.value
        )
    )


async def ready_stream(session: AsyncSession, *, actor: User, stream: Stream) -> bool:
    """Get a stream ready for its publisher (`POST .../start`): the channel's next publish goes
    live as this stream. Returns whether it is live already; an ended stream cannot start."""
    channel = await session.get_one(Channel, stream.channel_id)
    channels.ensure_owner(actor, channel)
    if stream.status == StreamStatus.ENDED.value:
        raise StreamAlreadyEnded("This stream has ended; create a new one to go live again")
    if stream.status == StreamStatus.LIVE.value:
        return True
    if await live_stream_of(session, channel.id) is not None:
        raise ChannelLiveElsewhere("The channel is live with another stream; end that one first")
    stream.ready_at = utcnow()
    await session.flush()
    return False


async def record_viewer(session: AsyncSession, *, stream: Stream, user: User | None) -> None:
    """`POST /streams/{id}/join`: remember when a signed-in viewer joined (anonymous viewers
    are only counted, by the socket they watch with)."""
    if stream.status == StreamStatus.ENDED.value:
        raise StreamAlreadyEnded("This stream has ended; its recording is among the channel's VODs")
    if user is None:
        return
    now = utcnow()
    seen = await session.get(StreamViewer, (stream.id, user.id))
    if seen is not None:
        seen.joined_at = now
        await session.flush()
        return
    try:
        async with session.begin_nested():
            session.add(StreamViewer(stream_id=stream.id, user_id=user.id, joined_at=now))
    except IntegrityError:  # the same viewer joining twice at once: the other one won
        seen = await session.get_one(StreamViewer, (stream.id, user.id), populate_existing=True)
        seen.joined_at = now
        await session.flush()


async def list_viewers(
    session: AsyncSession, *, stream: Stream, user_ids: list[uuid.UUID], limit: int
) -> tuple[list[ViewerOut], bool]:
    """The signed-in viewers among `user_ids` (those in the room now), latest joiners first;
    `joined_at` is their `POST .../join`, unknown for viewers that joined by socket only."""
    found: list[ViewerOut] = []
    for start in range(0, len(user_ids), 500):  # within every database's parameter limit
        rows = await session.execute(
            select(User, StreamViewer.joined_at)
            .outerjoin(
                StreamViewer,
                (StreamViewer.user_id == User.id) & (StreamViewer.stream_id == stream.id),
            )
            .where(User.id.in_(user_ids[start : start + 500]))
        )
        found.extend(
            ViewerOut(
                user_id=user.id,
                username=user.username,
                display_name=user.display_name,
                joined_at=joined_at,
            )
            for user, joined_at in rows.all()
        )
    found.sort(key=lambda v: v.username.lower())
    found.sort(key=lambda v: v.joined_at or NEVER, reverse=True)  # stable: unknown ones last
    return found[:limit], len(found) > limit


async def mark_stream_live(
    session: AsyncSession,
    *,
    channel: Channel,
    node_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> tuple[Stream, bool]:
    """Put a channel on air (the media pipeline calls this when a publisher starts).

    Reuses the channel's live stream (a reconnect), else the scheduled one readied last by
    `ready_stream` or else created last, else starts a new one from the channel's defaults.
    Returns the stream and whether it just went live; followers are notified when it did.
    `node_id`: the media node packaging it.
    """
    now = now or utcnow()
    live = await live_stream_of(session, channel.id)
    if live is not None:
        return live, False
    stream = await session.scalar(
        select(Stream)
        .where(Stream.channel_id == channel.id, Stream.status == StreamStatus.SCHEDULED.value)
        .order_by(Stream.ready_at.desc().nulls_last(), Stream.id.desc())
        .limit(1)
    )
    if stream is None:
        stream = Stream(
            channel_id=channel.id,
            title=_title_for(channel),
            category=channel.category,
            language=channel.language,
            is_mature=channel.is_mature,
        )
        session.add(stream)
    stream.status = StreamStatus.LIVE.value
    stream.node_id = node_id
    stream.started_at = now
    stream.viewers_sampled_at = now
    await session.flush()
    await _index_stream(session, stream, channel)
    await notifications.notify_followers_live(
        session, channel=channel, stream_id=stream.id, title=stream.title
    )
    publish(session, "stream:started", _event_payload(stream), rooms=(channel_room(channel.id),))
    return stream, True


async def mark_stream_ended(
    session: AsyncSession, *, stream: Stream, now: datetime | None = None, reason: str = "ended"
) -> Stream:
    """Take a stream off air (publisher gone past the reconnect window, or ended by owner);
    `reason` goes out with `stream:ended`."""
    if stream.status != StreamStatus.LIVE.value:
        return stream
    now = now or utcnow()
    await record_viewer_count(session, stream=stream, count=0, now=now)
    stream.status = StreamStatus.ENDED.value
    stream.ended_at = now
    await session.flush()
    channel = await session.get_one(Channel, stream.channel_id)
    await _index_stream(session, stream, channel)
    publish(
        session,
        "stream:ended",
        {**_event_payload(stream), "reason": reason},
        rooms=(channel_room(channel.id),),
    )
    return stream


def _event_payload(stream: Stream) -> dict[str, Any]:
    return {
        "stream_id": str(stream.id),
        "channel_id": str(stream.channel_id),
        "status": stream.status,
        "title": stream.title,
        "category": stream.category,
        "started_at": stream.started_at.isoformat() if stream.started_at else None,
        "ended_at": stream.ended_at.isoformat() if stream.ended_at else None,
        "peak_viewer_count": stream.peak_viewer_count,
    }


async def record_viewer_count(
    session: AsyncSession, *, stream: Stream, count: int, now: datetime | None = None
) -> Stream:
    """Set the current viewer count, keeping the peak and the viewer-time integral."""
    now = now or utcnow()
    if stream.viewers_sampled_at is not None and stream.status == StreamStatus.LIVE.value:
        elapsed = max(0.0, (now - stream.viewers_sampled_at).total_seconds())
        stream.viewer_seconds += int(stream.viewer_count * elapsed)
    stream.viewers_sampled_at = now
    stream.viewer_count = max(0, count)
    stream.peak_viewer_count = max(stream.peak_viewer_count, stream.viewer_count)
    await session.flush()
    return stream


async def list_channel_streams(
    session: AsyncSession, *, channel: Channel, params: PageParams, status: StreamStatus | None
) -> tuple[list[Stream], PageInfo]:
    query = select(Stream).where(Stream.channel_id == channel.id)
    if status is not None:
        query = query.where(Stream.status == status.value)
    return await paginate(session, query, keys=[SortKey(Stream.id, lambda s: s.id)], params=params)


async def list_streams(
    session: AsyncSession, *, params: PageParams, live_only: bool
) -> tuple[list[Stream], PageInfo]:
    """Streams, most watched first when live only, else newest first."""
    query = select(Stream)
    if live_only:
        query = query.where(Stream.status == StreamStatus.LIVE.value)
        keys = [
            SortKey(Stream.viewer_count, lambda s: s.viewer_count),
            SortKey(Stream.id, lambda s: s.id),
        ]
    else:
        # Named, not `!= ended`: the status index then skips the ended ones (most of them).
        query = query.where(
            Stream.status.in_((StreamStatus.SCHEDULED.value, StreamStatus.LIVE.value))
        )
        keys = [SortKey(Stream.id, lambda s: s.id)]
    return await paginate(session, query, keys=keys, params=params)
