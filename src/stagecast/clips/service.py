"""Clips: made from the live edge or a recording, playable at once, kept when the VOD goes.

Making a clip reads no media: its playlists name the stream's recorded segments where they
are (`referencing`). `detach_clips_of_stream` copies them into the clip's own folder
(`copied`) before a VOD's media is removed; a stream that is not recorded (its old segments
are deleted as they leave the DVR window) has its clips copied when they are made. The MP4
rendition and thumbnail are rendered afterwards by the in-process job (jobs.py).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.models import User
from stagecast.channels import service as channels
from stagecast.channels.models import Channel, ChannelFollow
from stagecast.clips.models import Clip, ClipLike, ClipMedia, ClipView, Mp4State
from stagecast.clips.ranges import (
    CLIP_MASTER,
    CLIP_PLAYLIST,
    Segment,
    covering,
    place_segments,
    read_media_playlist,
    recorded_span,
    render_clip_master,
    render_clip_playlist,
    variant_names,
)
from stagecast.clips.schemas import (
    MAX_SECONDS,
    MIN_SECONDS,
    ClipCreate,
    ClipCreator,
    ClipOut,
    ClipPeriod,
    ClipSort,
    ClipUpdate,
    LikeState,
    ViewState,
)
from stagecast.db.base import new_id, utcnow
from stagecast.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    RateLimitExceeded,
    ValidationFailed,
)
from stagecast.media.pipeline import MASTER_PLAYLIST, media_prefix
from stagecast.media.service import LiveMedia, media_of
from stagecast.media.store import MediaNotFound, MediaStore
from stagecast.moderation import service as moderation
from stagecast.moderation.service import ChannelRole
from stagecast.money import subscriptions
from stagecast.pagination import PageInfo, PageParams, SortKey, paginate, paginate_list
from stagecast.realtime.bus import channel_room, publish
from stagecast.runtime import Runtime
from stagecast.streams.models import Stream, StreamStatus
from stagecast.vods.models import Vod

CLIP_CREATED = "clip:created"
_EPSILON = 0.001
_PERIODS = {"day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=30)}
# Trending: clips of the last week, at most this many of the most viewed, ranked in Python.
TRENDING_WINDOW = timedelta(days=7)
TRENDING_CANDIDATES = 1000
TRENDING_LIKE_WEIGHT = 3.0
TRENDING_GRAVITY = 1.5
TRENDING_HOURS_OFFSET = 2.0
VIEW_INTERVAL = timedelta(hours=1)


class ClipNotFound(NotFound):
    code, title = "CLIP_NOT_FOUND", "Clip not found"


class ClipSourceUnavailable(Conflict):
    code, title = "CLIP_SOURCE_UNAVAILABLE", "The stream is neither live nor recorded"


class ClipRangeUnavailable(ValidationFailed):
    code, title = "CLIP_RANGE_UNAVAILABLE", "The range is outside what was recorded"


class ClippingNotAllowed(PermissionDenied):
    code, title = "CLIPPING_NOT_ALLOWED", "This channel does not let you clip"


class ClipRateLimited(RateLimitExceeded):
    title = "You made too many clips of this channel in the last hour"


class NotYourClip(PermissionDenied):
    code, title = "NOT_YOUR_CLIP", "This clip is someone else's"


class TrimOutsideRange(ValidationFailed):
    code, title = "TRIM_OUTSIDE_RANGE", "The trim must stay inside the clip's original range"


# --- where a clip's media lives --------------------------------------------------------------


def clip_prefix(clip_id: uuid.UUID) -> str:
    """Where a clip's own files live in the media store."""
    return f"clips/{clip_id}"


def playlist_url(clip_id: uuid.UUID) -> str:
    return f"/hls/clips/{clip_id}/{CLIP_MASTER}"


@dataclass(frozen=True, slots=True)
class ClipMediaPlan:
    """What a clip's playlists list: its segments per rendition and the range it shows."""

    clip_id: uuid.UUID
    stream_id: uuid.UUID
    renditions: tuple[tuple[str, tuple[Segment, ...]], ...]  # top rendition first
    start: float
    end: float
    copied: bool

    @classmethod
    def of(cls, clip: Clip) -> ClipMediaPlan:
        return cls(
            clip_id=clip.id,
            stream_id=clip.stream_id,
            renditions=tuple(
                (entry["rendition"], tuple(Segment.from_json(s) for s in entry["segments"]))
                for entry in clip.segments
            ),
            start=clip.start,
            end=clip.end,
            copied=clip.media_state == ClipMedia.COPIED.value,
        )

    def source_key(self, rendition: str, name: str) -> str:
        """The store key a segment or init of the clip is read from now."""
        if self.copied:
            return f"{clip_prefix(self.clip_id)}/{rendition}/{name}"
        return f"{media_prefix(self.stream_id)}/{rendition}/{name}"

    def shown(self, segments: tuple[Segment, ...]) -> list[Segment]:
        return covering(segments, self.start, self.end)


STREAM_MASTER = f"stream-{MASTER_PLAYLIST}"


async def keep_stream_master(store: MediaStore, plan: ClipMediaPlan) -> None:
    """Copy the stream's master playlist beside the clip's: the clip's variants come from it,
    and a trim rewrites them after the stream's media may be gone."""
    master = await store.read(f"{media_prefix(plan.stream_id)}/{MASTER_PLAYLIST}")
    await store.write(f"{clip_prefix(plan.clip_id)}/{STREAM_MASTER}", master)


async def write_clip_playlists(store: MediaStore, plan: ClipMediaPlan) -> None:
    """Write the clip's master and media playlists over the segments its range covers."""
    prefix = clip_prefix(plan.clip_id)
    master = await store.read(f"{prefix}/{STREAM_MASTER}")
    names = []
    for rendition, segments in plan.renditions:
        shown = plan.shown(segments)
        if not shown:
            continue
        names.append(rendition)
        base = "" if plan.copied else f"/hls/{plan.stream_id}/{rendition}/"
        text = render_clip_playlist(shown, start=plan.start, base=base)
        await store.write(f"{prefix}/{rendition}/{CLIP_PLAYLIST}", text.encode())
    text = render_clip_master(master.decode(), names)
    await store.write(f"{prefix}/{CLIP_MASTER}", text.encode())


async def copy_clip_media(store: MediaStore, plan: ClipMediaPlan) -> ClipMediaPlan:
    """Copy the clip's segments and inits from the stream into the clip's folder (idempotent:
    a copy already made is written again with the same bytes); return the copied plan."""
    prefix = clip_prefix(plan.clip_id)
    stream = media_prefix(plan.stream_id)
    for rendition, segments in plan.renditions:
        names = dict.fromkeys(name for s in segments for name in (s.map_uri, s.uri))
        for name in names:
            data = await store.read(f"{stream}/{rendition}/{name}")
            await store.write(f"{prefix}/{rendition}/{name}", data)
    return ClipMediaPlan(
        plan.clip_id, plan.stream_id, plan.renditions, plan.start, plan.end, copied=True
    )


async def detach_clips_of_stream(
    session: AsyncSession, store: MediaStore, stream_id: uuid.UUID
) -> int:
    """Give every clip of a stream its own copy of its media, before the stream's recorded
    media (its VOD) is removed from the store; return how many clips were copied.

    Call it in the transaction that deletes the VOD, before deleting the media: the rows are
    marked `copied` only if that transaction commits, and a copy made by a transaction that
    rolled back is simply made again next time."""
    clips = (
        await session.scalars(
            select(Clip).where(
                Clip.stream_id == stream_id, Clip.media_state == ClipMedia.REFERENCING.value
            )
        )
    ).all()
    for clip in clips:
        plan = await copy_clip_media(store, ClipMediaPlan.of(clip))
        await write_clip_playlists(store, plan)
        clip.media_state = ClipMedia.COPIED.value
    await session.flush()
    return len(clips)


# --- making a clip ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClipSource:
    """The stream a clip is made of, as the database says."""

    stream_id: uuid.UUID
    channel_id: uuid.UUID
    vod_id: uuid.UUID | None
    live: bool
    title: str

    def ensure_clippable(self) -> None:
        if not self.live and self.vod_id is None:
            raise ClipSourceUnavailable()


async def resolve_source(session: AsyncSession, data: ClipCreate) -> ClipSource:
    """The stream a clip request names (live, or ended with a recording: see
    `ClipSource.ensure_clippable`)."""
    vod: Vod | None
    if data.vod_id is not None:
        vod = await session.get(Vod, data.vod_id)
        if vod is None:
            raise NotFound("Recording not found")
        stream = await session.get_one(Stream, vod.stream_id)
    else:
        found = await session.get(Stream, data.stream_id)
        if found is None:
            raise NotFound("Stream not found")
        stream = found
        vod = await session.scalar(select(Vod).where(Vod.stream_id == stream.id))
    live = stream.status == StreamStatus.LIVE.value and data.vod_id is None
    return ClipSource(
        stream_id=stream.id,
        channel_id=stream.channel_id,
        vod_id=vod.id if vod is not None else None,
        live=live,
        title=stream.title,
    )


async def check_may_clip(
    session: AsyncSession, *, channel: Channel, user: User, now: datetime
) -> None:
    """Raise why `user` may not clip this channel now (its settings, its rate limit)."""
    role = await moderation.channel_role(session, channel, user)
    if role is not ChannelRole.VIEWER:
        return  # the owner, staff and moderators are held by neither
    settings = channels.settings_of(channel).clips
    if settings.allowed == "nobody":
        raise ClippingNotAllowed("This channel has turned clips off")
    if settings.allowed == "followers":
        follows = await session.scalar(
            select(ChannelFollow.id).where(
                ChannelFollow.channel_id == channel.id, ChannelFollow.user_id == user.id
            )
        )
        if follows is None:
            raise ClippingNotAllowed("Only this channel's followers can clip it")
    if settings.allowed == "subscribers" and not await subscriptions.subscribers_among(
        session, channel_id=channel.id, user_ids=[user.id], now=now
    ):
        raise ClippingNotAllowed("Only this channel's subscribers can clip it")
    await check_clip_limit(session, channel=channel, user=user, now=now)


async def check_clip_limit_again(
    session: AsyncSession, *, channel: Channel, user: User, now: datetime
) -> None:
    """The rate limit once more, in the transaction that inserts the clip: the count and the
    insert must be one step, or two clips asked at once both see room for one. SQLite's
    writing transactions begin IMMEDIATE (one writer at a time); on PostgreSQL the clipper's
    row is locked until commit (NO KEY UPDATE: rows that only refer to the user, chat
    messages and the like, are not held up)."""
    if await moderation.channel_role(session, channel, user) is not ChannelRole.VIEWER:
        return
    await session.execute(select(User.id).where(User.id == user.id).with_for_update(key_share=True))
    await check_clip_limit(session, channel=channel, user=user, now=now)


async def check_clip_limit(
    session: AsyncSession, *, channel: Channel, user: User, now: datetime
) -> None:
    """Raise ClipRateLimited when `user` made the channel's hourly number of clips."""
    settings = channels.settings_of(channel).clips
    since = now - timedelta(hours=1)
    made = (
        await session.execute(
            select(func.count(), func.min(Clip.created_at)).where(
                Clip.channel_id == channel.id,
                Clip.creator_id == user.id,
                Clip.created_at > since,
            )
        )
    ).one()
    if made[0] >= settings.per_user_per_hour:
        retry = max(1, math.ceil((made[1] + timedelta(hours=1) - now).total_seconds()))
        raise ClipRateLimited(
            f"At most {settings.per_user_per_hour} clips of this channel an hour",
            headers={
                "Retry-After": str(retry),
                "X-RateLimit-Limit": str(settings.per_user_per_hour),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(retry),
            },
            extra={"retry_after": retry},
        )


async def load_recording(
    media: LiveMedia, source: ClipSource
) -> tuple[list[tuple[str, list[Segment]]], bool]:
    """The recorded segments of each rendition (top first), and whether they are kept
    (False: a stream not recorded, whose old segments are deleted)."""
    if source.live:
        broadcast = media.by_stream(source.stream_id)
        pipeline = broadcast.pipeline if broadcast is not None else None
        if pipeline is None:
            raise ClipSourceUnavailable(
                "The stream is not packaged on this server yet; try again in a moment"
            )
        found = [
            (
                rendition.name,
                place_segments(
                    (s.uri, s.duration, s.map_uri, s.discontinuity)
                    for s in pipeline.packagers[rendition.name].segments
                ),
            )
            for rendition in pipeline.renditions
        ]
        return found, pipeline.config.recording
    prefix = media_prefix(source.stream_id)
    try:
        master = (await media.store.read(f"{prefix}/{MASTER_PLAYLIST}")).decode()
        renditions = variant_names(master)
        found = []
        for name in renditions:
            text = (await media.store.read(f"{prefix}/{name}/vod.m3u8")).decode()
            found.append((name, read_media_playlist(text)))
    except MediaNotFound as error:
        raise ClipSourceUnavailable("The stream's recording is gone") from error
    return found, True


def choose_range(
    data: ClipCreate,
    *,
    live: bool,
    recorded: float,
    dvr_window: float,
) -> tuple[float, float]:
    """The range [start, end) a request asks for, checked against what can be clipped."""
    earliest = max(0.0, recorded - dvr_window) if live else 0.0
    if data.start is None and live:
        end = recorded - data.offset
        start = end - data.duration
    elif data.start is None:
        raise ValidationFailed(
            "A clip of a recording needs its start",
            errors=[{"field": "start", "in": "body", "message": "required", "type": "missing"}],
        )
    else:
        start, end = data.start, data.start + data.duration
    if start < earliest - _EPSILON or end > recorded + _EPSILON:
        where = "The DVR window" if live else "The recording"
        raise ClipRangeUnavailable(
            f"{where} holds {earliest:.1f}-{recorded:.1f} s; "
            f"the clip asks for {start:.1f}-{end:.1f} s",
            extra={"available_start": round(earliest, 3), "available_end": round(recorded, 3)},
        )
    return round(max(start, 0.0), 3), round(min(end, recorded), 3)


async def insert_clip(
    session: AsyncSession,
    *,
    clip_id: uuid.UUID,
    source: ClipSource,
    user: User,
    title: str | None,
    plan: ClipMediaPlan,
) -> Clip:
    """Store a clip whose playlists are written, and announce it to the stream's room."""
    clip = Clip(
        id=clip_id,
        stream_id=source.stream_id,
        channel_id=source.channel_id,
        vod_id=source.vod_id,
        creator_id=user.id,
        title=title or source.title,
        source_start=plan.start,
        source_end=plan.end,
        start=plan.start,
        end=plan.end,
        segments=[
            {"rendition": name, "segments": [s.to_json() for s in segments]}
            for name, segments in plan.renditions
        ],
        media_state=(ClipMedia.COPIED if plan.copied else ClipMedia.REFERENCING).value,
        mp4_state=Mp4State.PENDING.value,
        render_version=1,
    )
    session.add(clip)
    await session.flush()
    await session.refresh(clip)
    channel = await session.get_one(Channel, clip.channel_id)
    out = present_clip(clip, channel=channel, creator=user)
    publish(
        session,
        CLIP_CREATED,
        {"clip": out.model_dump(mode="json")},
        rooms=(channel_room(clip.channel_id),),
    )
    return clip


# --- reading, editing, deleting --------------------------------------------------------------


async def get_clip(session: AsyncSession, clip_id: uuid.UUID) -> Clip:
    clip = await session.get(Clip, clip_id)
    if clip is None:
        raise ClipNotFound()
    return clip


async def update_clip(session: AsyncSession, *, actor: User, clip: Clip, data: ClipUpdate) -> bool:
    """Retitle or trim a clip (its clipper or the channel's owner); return whether its media
    changed (then its playlists are rewritten and its MP4 rendered again)."""
    channel = await session.get_one(Channel, clip.channel_id)
    if actor.id not in (clip.creator_id, channel.owner_id):
        raise NotYourClip("Only the clipper and the channel's owner can edit a clip")
    if data.title is not None:
        clip.title = data.title
    changed = False
    if data.start is not None or data.end is not None:
        length = clip.source_end - clip.source_start
        start = data.start if data.start is not None else clip.start - clip.source_start
        end = data.end if data.end is not None else clip.end - clip.source_start
        if start < 0 or end > length + _EPSILON or end - start < MIN_SECONDS - _EPSILON:
            raise TrimOutsideRange(
                f"Trim to within 0-{length:.3f} s, at least {MIN_SECONDS:g} s long",
                extra={"original_duration": round(length, 3)},
            )
        if end - start > MAX_SECONDS + _EPSILON:
            raise TrimOutsideRange(f"A clip is at most {MAX_SECONDS:g} s")
        new_start = round(clip.source_start + start, 3)
        new_end = round(min(clip.source_start + end, clip.source_end), 3)
        if (new_start, new_end) != (clip.start, clip.end):
            clip.start, clip.end = new_start, new_end
            clip.render_version += 1
            clip.mp4_state = Mp4State.PENDING.value
            changed = True
    await session.flush()
    return changed


async def delete_clip(session: AsyncSession, *, actor: User, clip: Clip) -> None:
    """Delete a clip (its clipper, the channel's owner and moderators, staff); the route
    removes its files once this commits."""
    if actor.id != clip.creator_id:
        channel = await session.get_one(Channel, clip.channel_id)
        if await moderation.channel_role(session, channel, actor) is ChannelRole.VIEWER:
            raise NotYourClip("Only the clipper, the channel's moderators and staff can delete it")
    await session.delete(clip)
    await session.flush()


async def like_clip(session: AsyncSession, *, user: User, clip: Clip, like: bool) -> LikeState:
    """Like or unlike; doing it twice changes nothing."""
    existing = await session.get(ClipLike, (clip.id, user.id))
    if like and existing is None:
        session.add(ClipLike(clip_id=clip.id, user_id=user.id))
        clip.like_count += 1
    elif not like and existing is not None:
        await session.execute(
            delete(ClipLike).where(ClipLike.clip_id == clip.id, ClipLike.user_id == user.id)
        )
        clip.like_count = max(0, clip.like_count - 1)
    await session.flush()
    return LikeState(liked=like, like_count=clip.like_count)


async def count_view(session: AsyncSession, *, clip: Clip, viewer: str, now: datetime) -> ViewState:
    """Count a view unless this viewer's last counted view is less than an hour old."""
    seen = await session.get(ClipView, (clip.id, viewer))
    if seen is not None and now - seen.counted_at < VIEW_INTERVAL:
        return ViewState(counted=False, view_count=clip.view_count)
    if seen is None:
        session.add(ClipView(clip_id=clip.id, viewer=viewer, counted_at=now))
    else:
        seen.counted_at = now
    clip.view_count += 1
    await session.flush()
    return ViewState(counted=True, view_count=clip.view_count)


async def liked_by(
    session: AsyncSession, user: User | None, clip_ids: list[uuid.UUID]
) -> set[uuid.UUID]:
    if user is None or not clip_ids:
        return set()
    rows = await session.scalars(
        select(ClipLike.clip_id).where(ClipLike.user_id == user.id, ClipLike.clip_id.in_(clip_ids))
    )
    return set(rows.all())


# --- lists -----------------------------------------------------------------------------------


def _sort_keys(sort: ClipSort) -> list[SortKey]:
    last = SortKey(Clip.id, lambda c: c.id)
    if sort == "views":
        return [SortKey(Clip.view_count, lambda c: c.view_count), last]
    if sort == "likes":
        return [SortKey(Clip.like_count, lambda c: c.like_count), last]
    return [last]


async def list_channel_clips(
    session: AsyncSession,
    *,
    channel: Channel,
    sort: ClipSort,
    period: ClipPeriod,
    params: PageParams,
    now: datetime,
) -> tuple[list[Clip], PageInfo]:
    """A channel's clips by views, likes or newest first, made within the period."""
    query = select(Clip).where(Clip.channel_id == channel.id)
    if period != "all":
        query = query.where(Clip.created_at >= now - _PERIODS[period])
    return await paginate(session, query, keys=_sort_keys(sort), params=params)


def trending_score(*, views: int, likes: int, age_hours: float) -> float:
    """(views + 3 x likes) / (age in hours + 2) ^ 1.5: engagement, decaying with age."""
    weight = views + TRENDING_LIKE_WEIGHT * likes
    decay: float = (max(age_hours, 0.0) + TRENDING_HOURS_OFFSET) ** TRENDING_GRAVITY
    return weight / decay


async def trending_clips(
    session: AsyncSession, *, params: PageParams, now: datetime
) -> tuple[list[Clip], PageInfo]:
    """The platform's clips of the last week ranked by `trending_score`."""
    candidates = (
        await session.scalars(
            select(Clip)
            .where(Clip.created_at >= now - TRENDING_WINDOW)
            .order_by(Clip.view_count.desc(), Clip.id.desc())
            .limit(TRENDING_CANDIDATES)
        )
    ).all()
    ranked = sorted(
        candidates,
        key=lambda c: (
            trending_score(
                views=c.view_count,
                likes=c.like_count,
                age_hours=(now - c.created_at).total_seconds() / 3600,
            ),
            c.id,
        ),
        reverse=True,
    )
    return paginate_list(ranked, params)


# --- presenting ------------------------------------------------------------------------------


def media_url(key: str | None) -> str | None:
    """The public address of a file under clips/ in the store."""
    return f"/hls/{key}" if key else None


def present_clip(
    clip: Clip, *, channel: Channel, creator: User | None, liked: bool | None = None
) -> ClipOut:
    return ClipOut(
        id=clip.id,
        stream_id=clip.stream_id,
        channel_id=clip.channel_id,
        channel_slug=channel.slug,
        vod_id=clip.vod_id,
        creator=ClipCreator(
            id=creator.id, username=creator.username, display_name=creator.display_name
        )
        if creator is not None
        else None,
        title=clip.title,
        duration=round(clip.end - clip.start, 3),
        start=clip.start,
        trim_start=round(clip.start - clip.source_start, 3),
        original_duration=round(clip.source_end - clip.source_start, 3),
        playlist_url=playlist_url(clip.id),
        mp4_state=Mp4State(clip.mp4_state).value,
        mp4_url=media_url(clip.mp4_key) if clip.mp4_state == Mp4State.READY.value else None,
        mp4_duration=clip.mp4_duration if clip.mp4_state == Mp4State.READY.value else None,
        thumbnail_url=media_url(clip.thumbnail_key),
        media_state=ClipMedia(clip.media_state).value,
        view_count=clip.view_count,
        like_count=clip.like_count,
        liked=liked,
        url=f"/clips/{clip.id}",
        embed_url=f"/embed/clips/{clip.id}",
        created_at=clip.created_at,
    )


async def present_clips(
    session: AsyncSession, clips: list[Clip], *, viewer: User | None
) -> list[ClipOut]:
    """Clips with their channels, creators and (signed in) whether the viewer likes them."""
    channel_ids = {c.channel_id for c in clips}
    creator_ids = {c.creator_id for c in clips if c.creator_id is not None}
    found_channels = {
        c.id: c
        for c in (await session.scalars(select(Channel).where(Channel.id.in_(channel_ids)))).all()
    }
    creators = {
        u.id: u for u in (await session.scalars(select(User).where(User.id.in_(creator_ids)))).all()
    }
    liked = await liked_by(session, viewer, [c.id for c in clips])
    return [
        present_clip(
            c,
            channel=found_channels[c.channel_id],
            creator=creators.get(c.creator_id) if c.creator_id else None,
            liked=(c.id in liked) if viewer is not None else None,
        )
        for c in clips
    ]


def recorded_seconds(renditions: list[tuple[str, list[Segment]]]) -> float:
    """How far the top rendition's recording reaches."""
    return recorded_span(renditions[0][1]) if renditions else 0.0


async def make_clip(runtime: Runtime, *, user: User, data: ClipCreate) -> uuid.UUID:
    """Make a clip and return its id: check who may, find the segments of the range, write
    its playlists, store it. A workflow (like the money flows): its store work happens
    between two transactions, never inside one."""
    media = media_of(runtime)
    now = utcnow()
    async with runtime.db.read_session() as session, session.begin():
        source = await resolve_source(session, data)
        channel = await session.get_one(Channel, source.channel_id)
        await check_may_clip(session, channel=channel, user=user, now=now)
    source.ensure_clippable()
    renditions, kept = await load_recording(media, source)
    start, end = choose_range(
        data,
        live=source.live,
        recorded=recorded_seconds(renditions),
        dvr_window=runtime.settings.media.dvr_window_seconds,
    )
    clip_id = new_id()
    plan = ClipMediaPlan(
        clip_id=clip_id,
        stream_id=source.stream_id,
        renditions=tuple(
            (name, tuple(covering(segments, start, end)))
            for name, segments in renditions
            if covering(segments, start, end)
        ),
        start=start,
        end=end,
        copied=False,
    )
    try:
        await keep_stream_master(media.store, plan)
        if not kept:
            plan = await copy_clip_media(media.store, plan)
        await write_clip_playlists(media.store, plan)
        async with runtime.db.session() as session, session.begin():
            author = await session.get_one(User, user.id)
            channel = await session.get_one(Channel, source.channel_id)
            await check_clip_limit_again(session, channel=channel, user=author, now=now)
            await insert_clip(
                session, clip_id=clip_id, source=source, user=author, title=data.title, plan=plan
            )
    except BaseException:
        await media.store.delete_prefix(f"{clip_prefix(clip_id)}/")
        raise
    return clip_id
