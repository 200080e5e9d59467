"""Cut CMAF fragments into HLS segments, store them, and keep one rendition's playlists.

The packager writes `init.mp4`, `seg_<n>.m4s`, the live `index.m3u8` and, when the stream
ends with recording on, `vod.m3u8` under its prefix. A segment always starts at a keyframe and
is cut once the target duration is reached; the playlist is rewritten only after the segment it
adds is stored, so it never names a missing segment. Playlist text comes from pure functions.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import structlog

from stagecast.media.fmp4 import Fragment, InitSegment, MediaFormatError, read_fragments
from stagecast.media.ladder import HLS_VERSION
from stagecast.media.store import MediaStore, validate_prefix

log = structlog.get_logger(__name__)

PLAYLIST_NAME = "index.m3u8"
VOD_PLAYLIST_NAME = "vod.m3u8"
# A keyframe this close to the target still closes the segment (frame timing jitter).
_CUT_TOLERANCE = 0.010
# A jump in media time larger than this between fragments is a timestamp discontinuity.
_MAX_TIMESTAMP_JUMP = 0.5


# --- playlists (pure) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaylistSegment:
    """One media segment as a playlist lists it."""

    uri: str
    duration: float
    map_uri: str
    program_date_time: datetime | None = None
    discontinuity: bool = False


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    """A media playlist: live (sliding or EVENT) or VOD."""

    segments: tuple[PlaylistSegment, ...]
    target_duration: int
    media_sequence: int = 0
    discontinuity_sequence: int = 0
    playlist_type: Literal["EVENT", "VOD"] | None = None
    ended: bool = False


def format_program_date_time(moment: datetime) -> str:
    """Return an ISO 8601 UTC timestamp with milliseconds, as EXT-X-PROGRAM-DATE-TIME wants."""
    if moment.tzinfo is None:
        raise ValueError("program date-time needs an aware datetime")
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def target_duration_for(durations: Iterable[float], *, ceiling: bool = False) -> int:
    """Return EXT-X-TARGETDURATION for segments of these durations (at least 1).

    RFC 8216 4.3.3.1: each EXTINF, rounded to the nearest integer, must not exceed it. Rounding
    keeps 1.02 s segments at a target of 1, where a ceiling would make it 2 and double the
    distance hls.js keeps from the live edge (three target durations). `ceiling` gives the
    stricter rule (no EXTINF above the target at all) for clients that want it.
    """
    longest = max((round(duration, 3) for duration in durations), default=0.0)
    return max(1, math.ceil(longest) if ceiling else math.floor(longest + 0.5))


def segments_to_drop(durations: Sequence[float], *, window: float, minimum: float) -> int:
    """Return how many of the oldest segments leave a live playlist of these durations.

    The playlist keeps at least `window` seconds, and at least `minimum` (three target
    durations: RFC 8216 6.2.2 forbids shorter live playlists).
    """
    keep_at_least = max(window, minimum)
    remaining = sum(durations)
    dropped = 0
    for duration in durations[:-1]:
        if remaining - duration < keep_at_least:
            break
        remaining -= duration
        dropped += 1
    return dropped


def render_media_playlist(playlist: MediaPlaylist) -> str:
    """Return the text of a media playlist."""
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{HLS_VERSION}",
        f"#EXT-X-TARGETDURATION:{playlist.target_duration}",
        f"#EXT-X-MEDIA-SEQUENCE:{playlist.media_sequence}",
    ]
    if playlist.discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{playlist.discontinuity_sequence}")
    if playlist.playlist_type is not None:
        lines.append(f"#EXT-X-PLAYLIST-TYPE:{playlist.playlist_type}")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    map_uri: str | None = None
    for segment in playlist.segments:
        if segment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.map_uri != map_uri:
            map_uri = segment.map_uri
            lines.append(f'#EXT-X-MAP:URI="{map_uri}"')
        if segment.program_date_time is not None:
            stamp = format_program_date_time(segment.program_date_time)
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{stamp}")
        lines += [f"#EXTINF:{segment.duration:.3f},", segment.uri]
    if playlist.ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


# --- the packager ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PackagerSettings:
    """How one rendition is segmented and how much of it is kept."""

    target_duration: float = 1.0  # seconds; segments close at the first keyframe past it
    dvr_window: float | None = 60.0  # seconds in the live playlist; None keeps all (EVENT)
    keep_recording: bool = True  # keep every segment for the VOD instead of deleting old ones
    ceil_target_duration: bool = False  # EXT-X-TARGETDURATION >= every EXTINF, not rounded
    # Every fragment starts at a keyframe (ffmpeg's `frag_keyframe` alone): a segment can be
    # stored as soon as it is long enough instead of when the next keyframe arrives, which
    # saves a whole segment of latency.
    fragments_start_at_keyframes: bool = False

    def __post_init__(self) -> None:
        if not 1.0 <= self.target_duration <= 2.0:
            raise ValueError("target_duration must be between 1 and 2 seconds")
        if self.dvr_window is not None and self.dvr_window <= 0:
            raise ValueError("dvr_window must be positive")


@dataclass(frozen=True, slots=True)
class StoredSegment:
    """A segment written to the store."""

    number: int
    uri: str
    duration: float
    size: int
    map_uri: str
    program_date_time: datetime
    discontinuity: bool
    frames: int

    def to_playlist(self) -> PlaylistSegment:
        """Return the playlist entry of this segment."""
        return PlaylistSegment(
            uri=self.uri,
            duration=self.duration,
            map_uri=self.map_uri,
            program_date_time=self.program_date_time,
            discontinuity=self.discontinuity,
        )


@dataclass(frozen=True, slots=True)
class RecordingSummary:
    """What `finish()` leaves behind."""

    segment_count: int
    duration: float
    size: int
    vod_playlist_key: str | None


@dataclass(slots=True)
class _Totals:
    """Running sums over every stored segment."""

    duration: float = 0.0
    size: int = 0
    frames: int = 0
    longest: float = 0.0
    peak_bitrate: int = 0

    def add(self, segment: StoredSegment) -> None:
        self.duration += segment.duration
        self.size += segment.size
        self.frames += segment.frames
        self.longest = max(self.longest, segment.duration)
        self.peak_bitrate = max(self.peak_bitrate, _bitrate(segment.size, segment.duration))


@dataclass(slots=True)
class _Epoch:
    """A stretch of continuous media time, anchored to the wall clock."""

    wall_clock: datetime
    origin: int | None = None  # media time (ticks) of its first fragment


class Packager:
    """Package one rendition: fragments in, segments and playlists in the media store."""

    def __init__(
        self,
        store: MediaStore,
        prefix: str,
        *,
        started_at: datetime,
        settings: PackagerSettings | None = None,
    ) -> None:
        if started_at.tzinfo is None:
            raise ValueError("started_at must be an aware datetime (the ingest clock)")
        self.store = store
        self.prefix = validate_prefix(prefix.strip("/"))
        self.settings = settings or PackagerSettings()
        self._lock = asyncio.Lock()
        self._init: InitSegment | None = None
        self._map_uri = ""
        self._init_count = 0
        self._pending: list[Fragment] = []
        self._segments: list[StoredSegment] = []
        self._totals = _Totals()
        self._window_start = 0
        self._dropped_discontinuities = 0
        self._retired: deque[tuple[StoredSegment, float]] = deque()  # (segment, edge at removal)
        self._longest_playlist = 0.0
        self._epoch = _Epoch(started_at)
        self._next_start: int | None = None
        self._discontinuity_next = False
        self._summary: RecordingSummary | None = None

    def key(self, name: str) -> str:
        """Return the store key of a file of this rendition."""
        return f"{self.prefix}/{name}" if self.prefix else name

    @property
    def init(self) -> InitSegment | None:
        """Return the current init segment (its tracks give CODECS and RESOLUTION)."""
        return self._init

    @property
    def segments(self) -> tuple[StoredSegment, ...]:
        """Return every segment written so far, oldest first."""
        return tuple(self._segments)

    @property
    def duration(self) -> float:
        """Return the total media duration of the written segments, in seconds."""
        return self._totals.duration

    @property
    def peak_bitrate(self) -> int:
        """Return the highest segment bitrate seen (bits per second), for BANDWIDTH."""
        return self._totals.peak_bitrate

    @property
    def average_bitrate(self) -> int:
        """Return the average bitrate over all segments, for AVERAGE-BANDWIDTH."""
        return _bitrate(self._totals.size, self._totals.duration)

    @property
    def frame_rate(self) -> float | None:
        """Return the measured video frame rate, for FRAME-RATE."""
        if self._init is None or self._init.video is None or not self._totals.duration:
            return None
        return self._totals.frames / self._totals.duration

    async def consume(self, stream: asyncio.StreamReader) -> None:
        """Package everything ffmpeg writes to `stream` until EOF.

        A `MediaFormatError` leaves every stored segment and playlist valid; complete fragments
        not yet in a segment are kept for `discontinuity()` or `finish()`.
        """
        async for item in read_fragments(stream):
            await self.push(item)

    async def push(self, item: InitSegment | Fragment) -> None:
        """Take the next init segment or fragment from the parser."""
        async with self._lock:
            if self._summary is not None:
                raise RuntimeError("the packager has finished")
            if isinstance(item, InitSegment):
                await self._take_init(item)
            else:
                await self._take_fragment(item)

    async def discontinuity(self, *, wall_clock: datetime | None = None) -> None:
        """Close the current segment and start a new timeline (ffmpeg restarted, reconnect).

        `wall_clock` is the ingest time at which the new media starts; by default it continues
        where the last segment ended. The next segment carries EXT-X-DISCONTINUITY.
        """
        async with self._lock:
            await self._cut()
            self._start_discontinuity(wall_clock)

    async def finish(self) -> RecordingSummary:
        """Store the last segment, end the live playlist and write the VOD playlist."""
        async with self._lock:
            if self._summary is not None:
                return self._summary
            await self._cut()
            vod_key = None
            if self._segments:
                await self._write_live_playlist(ended=True)
                if self.settings.keep_recording:
                    vod_key = self.key(VOD_PLAYLIST_NAME)
                    await self._write_text(vod_key, render_media_playlist(self._vod_playlist()))
            self._summary = RecordingSummary(
                segment_count=len(self._segments),
                duration=self.duration,
                size=self._totals.size,
                vod_playlist_key=vod_key,
            )
            return self._summary

    # --- internals ---

    async def _take_init(self, init: InitSegment) -> None:
        if self._init is not None and init.data == self._init.data:
            return  # the same init again (a restarted ffmpeg with the same settings)
        if self._init is not None:
            # New codec parameters: what follows cannot share a segment or a timeline.
            await self._cut()
            if not self._discontinuity_next:
                self._start_discontinuity(None)
        name = "init.mp4" if self._init_count == 0 else f"init_{self._init_count}.mp4"
        await self.store.write(self.key(name), init.data)
        self._init_count += 1
        self._init = init
        self._map_uri = name

    async def _take_fragment(self, fragment: Fragment) -> None:
        if self._init is None:
            raise MediaFormatError("fragment before the init segment")
        if self._next_start is not None:
            jump = (fragment.start - self._next_start) / fragment.timescale
            if abs(jump) > _MAX_TIMESTAMP_JUMP:
                log.info("media.packager.timestamp_jump", prefix=self.prefix, seconds=jump)
                await self._cut()
                # Backwards, the wall clock cannot follow media time: start a new epoch there.
                self._start_discontinuity(None, new_epoch=jump < 0)
        if not self._pending and not fragment.keyframe:
            # A segment must start at a keyframe; only at the very start or after a
            # discontinuity can a fragment arrive without one.
            log.info("media.packager.dropped_fragment", prefix=self.prefix, start=fragment.start)
            return
        if self._pending and fragment.keyframe and self._pending_duration() >= self._cut_at():
            await self._cut()
        if self._epoch.origin is None:
            self._epoch.origin = fragment.start
        self._pending.append(fragment)
        self._next_start = fragment.start + fragment.duration
        if (
            self.settings.fragments_start_at_keyframes
            and self._pending_duration() >= self._cut_at()
        ):
            await self._cut()

    def _cut_at(self) -> float:
        return self.settings.target_duration - _CUT_TOLERANCE

    def _pending_duration(self) -> float:
        return sum(fragment.duration_seconds for fragment in self._pending)

    def _start_discontinuity(self, wall_clock: datetime | None, *, new_epoch: bool = True) -> None:
        if new_epoch:
            if wall_clock is None:
                wall_clock = self._timeline_end()
            elif wall_clock.tzinfo is None:
                raise ValueError("wall_clock must be an aware datetime")
            self._epoch = _Epoch(wall_clock)
        self._next_start = None
        self._discontinuity_next = bool(self._segments)

    def _timeline_end(self) -> datetime:
        if not self._segments:
            return self._epoch.wall_clock
        last = self._segments[-1]
        return last.program_date_time + timedelta(seconds=last.duration)

    async def _cut(self) -> None:
        """Store the pending fragments as the next segment and update the playlist."""
        if not self._pending:
            return
        fragments = self._pending
        first = fragments[0]
        origin = self._epoch.origin if self._epoch.origin is not None else first.start
        offset = (first.start - origin) / first.timescale
        data = b"".join(fragment.data for fragment in fragments)
        number = self._segments[-1].number + 1 if self._segments else 0
        segment = StoredSegment(
            number=number,
            uri=f"seg_{number}.m4s",
            duration=sum(fragment.duration for fragment in fragments) / first.timescale,
            size=len(data),
            map_uri=self._map_uri,
            program_date_time=self._epoch.wall_clock + timedelta(seconds=offset),
            discontinuity=self._discontinuity_next,
            frames=sum(fragment.sample_count for fragment in fragments),
        )
        await self.store.write(self.key(segment.uri), data)
        # Only a stored segment leaves the pending list: a failed write loses nothing.
        self._pending = []
        self._segments.append(segment)
        self._totals.add(segment)
        self._discontinuity_next = False
        self._slide_window()
        await self._write_live_playlist(ended=False)
        if not self.settings.keep_recording:
            await self._delete_retired()

    def _slide_window(self) -> None:
        if self.settings.dvr_window is None:
            return
        live = self._segments[self._window_start :]
        target = self._target_duration()
        dropped = segments_to_drop(
            [segment.duration for segment in live],
            window=self.settings.dvr_window,
            minimum=3 * target,
        )
        edge = self.duration
        for segment in live[:dropped]:
            self._dropped_discontinuities += segment.discontinuity
            if not self.settings.keep_recording:
                self._retired.append((segment, edge))
        self._window_start += dropped

    async def _delete_retired(self) -> None:
        # RFC 8216 6.2.2: a removed segment stays available for its duration plus the duration
        # of the longest playlist that listed it.
        edge = self.duration
        while self._retired:
            segment, removed_at = self._retired[0]
            if edge - removed_at < segment.duration + self._longest_playlist:
                break
            self._retired.popleft()
            await self.store.delete(self.key(segment.uri))

    def _target_duration(self) -> int:
        longest = [self._totals.longest]
        return target_duration_for(longest, ceiling=self.settings.ceil_target_duration)

    def _live_playlist(self, *, ended: bool) -> MediaPlaylist:
        live = self._segments[self._window_start :]
        return MediaPlaylist(
            segments=tuple(segment.to_playlist() for segment in live),
            target_duration=self._target_duration(),
            media_sequence=live[0].number,
            discontinuity_sequence=self._dropped_discontinuities,
            playlist_type="EVENT" if self.settings.dvr_window is None else None,
            ended=ended,
        )

    def _vod_playlist(self) -> MediaPlaylist:
        return MediaPlaylist(
            segments=tuple(segment.to_playlist() for segment in self._segments),
            target_duration=self._target_duration(),
            playlist_type="VOD",
            ended=True,
        )

    async def _write_live_playlist(self, *, ended: bool) -> None:
        playlist = self._live_playlist(ended=ended)
        listed = sum(segment.duration for segment in playlist.segments)
        self._longest_playlist = max(self._longest_playlist, listed)
        await self._write_text(self.key(PLAYLIST_NAME), render_media_playlist(playlist))

    async def _write_text(self, key: str, text: str) -> None:
        await self.store.write(key, text.encode())


def _bitrate(size: int, duration: float) -> int:
    return math.ceil(size * 8 / duration) if duration > 0 else 0
