"""Cut CMAF fragments into HLS segments, store them, and keep one rendition's playlists.

The packager writes `init.mp4` (`init_<n>.mp4` when the codec parameters change, from segment
n on), `seg_<n>.m4s`, the live `index.m3u8` and, when the stream ends with recording on,
`vod.m3u8` under its prefix. A segment always starts at a keyframe and
is cut once the target duration is reached; the playlist is rewritten only after the segment it
adds is stored, so it never names a missing segment. Playlist text comes from `playlists`.

Low-Latency HLS (`part_target` set): every fragment ffmpeg writes is also stored at once as a
partial segment `part_<n>_<i>.m4s` and listed, so a player can fetch media a fraction of a
second after it was encoded instead of a whole segment later. Players block on the next part
or playlist version through `wait_for_playlist` / `wait_for_part`.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from stagecast.media.fmp4 import Fragment, InitSegment, MediaFormatError, read_fragments
from stagecast.media.playlists import (
    MediaPlaylist,
    OpenSegment,
    PlaylistPart,
    PlaylistSegment,
    part_uri,
    render_media_playlist,
    segments_to_drop,
    target_duration_for,
)
from stagecast.media.store import MediaStore, validate_prefix

log = structlog.get_logger(__name__)

PLAYLIST_NAME = "index.m3u8"
VOD_PLAYLIST_NAME = "vod.m3u8"
# A keyframe this close to the target still closes the segment (frame timing jitter).
_CUT_TOLERANCE = 0.010
# A jump in media time larger than this between fragments is a timestamp discontinuity.
_MAX_TIMESTAMP_JUMP = 0.5
# Parts are listed for the segments this many target durations from the live edge
# (RFC 8216bis 6.2.2) and their files kept a while longer for players holding older playlists.
_PARTS_LISTED_TARGETS = 3
_PARTS_KEPT_SEGMENTS = 10


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
    # Low-Latency HLS: every fragment is a partial segment no longer than this (ffmpeg's
    # `-frag_duration` keeps them under it). None: plain HLS.
    part_target: float | None = None

    def __post_init__(self) -> None:
        if not 1.0 <= self.target_duration <= 2.0:
            raise ValueError("target_duration must be between 1 and 2 seconds")
        if self.part_target is not None and not 0.1 <= self.part_target < self.target_duration:
            raise ValueError("part_target must be at least 0.1 s and below the target duration")
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
    parts: tuple[PlaylistPart, ...] = ()

    def to_playlist(self, *, with_parts: bool = False) -> PlaylistSegment:
        """Return the playlist entry of this segment."""
        return PlaylistSegment(
            uri=self.uri,
            duration=self.duration,
            map_uri=self.map_uri,
            program_date_time=self.program_date_time,
            discontinuity=self.discontinuity,
            parts=self.parts if with_parts else (),
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
        self._parts: list[PlaylistPart] = []  # the pending fragments stored as parts
        self._changed = asyncio.Event()  # set (and replaced) whenever the playlist changes
        self._last_keyframe: int | None = None  # media time of the latest keyframe
        self._keyframe_interval: float | None = None
        self._with_part_files: deque[StoredSegment] = deque()
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
    def keyframe_interval(self) -> float | None:
        """Return the latest interval between two keyframes, in seconds (None before two)."""
        return self._keyframe_interval

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
            self._notify()
            # The ended playlist lists no parts; whole segments hold the same media.
            while self._with_part_files:
                await self._delete_parts(self._with_part_files.popleft())
            return self._summary

    async def wait_for_playlist(self, sequence: int, part: int | None) -> None:
        """Wait until the live playlist lists segment `sequence` (its part `part`) or later.

        A blocking playlist reload (`_HLS_msn` / `_HLS_part`); it returns at once when the
        stream has ended (the playlist will not grow). Bound it with `asyncio.timeout`.
        """

        def listed() -> bool | None:
            if self._summary is not None or sequence < self._open_number():
                return True
            if sequence == self._open_number() and part is not None and part < len(self._parts):
                return True
            return None

        await self._wait(listed)

    async def wait_for_part(self, sequence: int, index: int) -> bool:
        """Wait until part `index` of segment `sequence` is stored; False if it never will be.

        A player asks for the part the playlist's preload hint names before it exists. Bound
        it with `asyncio.timeout`.
        """

        def stored() -> bool | None:
            open_number = self._open_number()
            if sequence > open_number + 1:
                return False  # not even hinted yet: a guess, not worth holding a request for
            if sequence < open_number:
                return index < len(self._segments[sequence].parts)
            if sequence == open_number and index < len(self._parts):
                return True
            return False if self._summary is not None else None

        return await self._wait(stored)

    @property
    def target_duration(self) -> int:
        """Return the live playlist's EXT-X-TARGETDURATION."""
        return self._target_duration()

    def expected_sequence(self) -> int:
        """Return the sequence number of the segment being cut (the next one to complete)."""
        return self._open_number()

    # --- internals ---

    async def _take_init(self, init: InitSegment) -> None:
        if self._init is not None and init.data == self._init.data:
            return  # the same init again (a restarted ffmpeg with the same settings)
        if self._init is not None:
            # New codec parameters: what follows cannot share a segment or a timeline.
            await self._cut()
            if not self._discontinuity_next:
                self._start_discontinuity(None)
        # Later inits are named by the first segment they serve, so that crash recovery
        # (media/recovery.py) can tell which init each stored segment needs.
        name = "init.mp4" if self._init_count == 0 else f"init_{self._open_number()}.mp4"
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
        if fragment.keyframe:
            self._note_keyframe(fragment)
        self._pending.append(fragment)
        self._next_start = fragment.start + fragment.duration
        if self.settings.part_target is not None:
            await self._store_part(fragment)
        elif (
            self.settings.fragments_start_at_keyframes
            and self._pending_duration() >= self._cut_at()
        ):
            await self._cut()

    def _note_keyframe(self, fragment: Fragment) -> None:
        if self._last_keyframe is not None and self._next_start is not None:
            self._keyframe_interval = (fragment.start - self._last_keyframe) / fragment.timescale
        self._last_keyframe = fragment.start

    async def _store_part(self, fragment: Fragment) -> None:
        part = PlaylistPart(
            uri=part_uri(self._open_number(), len(self._parts)),
            duration=fragment.duration_seconds,
            independent=fragment.keyframe,
        )
        await self.store.write(self.key(part.uri), fragment.data)
        self._parts.append(part)
        await self._write_live_playlist(ended=False)

    def _next_part_hint(self) -> str:
        """Name the part most likely to come next: the next of this segment, or the first of
        the next segment when this one is long enough and a keyframe is due."""
        open_number = self._open_number()
        if self._pending and self._pending_duration() >= self._cut_at() and self._keyframe_due():
            return part_uri(open_number + 1, 0)
        return part_uri(open_number, len(self._parts))

    def _keyframe_due(self) -> bool:
        if self._keyframe_interval is None or self._last_keyframe is None or not self._pending:
            return True
        timescale = self._pending[-1].timescale
        since = ((self._next_start or 0) - self._last_keyframe) / timescale
        return since >= self._keyframe_interval - _CUT_TOLERANCE

    def _open_number(self) -> int:
        return self._segments[-1].number + 1 if self._segments else 0

    async def _wait(self, ready: Callable[[], bool | None]) -> bool:
        while (state := ready()) is None:
            await self._changed.wait()
        return state

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

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
        self._last_keyframe = None
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
        data = b"".join(fragment.data for fragment in fragments)
        number = self._open_number()
        segment = StoredSegment(
            number=number,
            uri=f"seg_{number}.m4s",
            duration=sum(fragment.duration for fragment in fragments) / first.timescale,
            size=len(data),
            map_uri=self._map_uri,
            program_date_time=self._program_date_time(first),
            discontinuity=self._discontinuity_next,
            frames=sum(fragment.sample_count for fragment in fragments),
            parts=tuple(self._parts),
        )
        await self.store.write(self.key(segment.uri), data)
        # Only a stored segment leaves the pending list: a failed write loses nothing.
        self._pending = []
        self._parts = []
        self._segments.append(segment)
        self._totals.add(segment)
        self._discontinuity_next = False
        self._slide_window()
        await self._write_live_playlist(ended=False)
        if not self.settings.keep_recording:
            await self._delete_retired()
        if segment.parts:
            self._with_part_files.append(segment)
        while len(self._with_part_files) > _PARTS_KEPT_SEGMENTS:
            await self._delete_parts(self._with_part_files.popleft())

    def _program_date_time(self, first: Fragment) -> datetime:
        origin = self._epoch.origin if self._epoch.origin is not None else first.start
        return self._epoch.wall_clock + timedelta(seconds=(first.start - origin) / first.timescale)

    async def _delete_parts(self, segment: StoredSegment) -> None:
        for part in segment.parts:
            await self.store.delete(self.key(part.uri))

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
        # The configured target counts too: parts are listed before the first segment is cut.
        longest = [self._totals.longest, self.settings.target_duration]
        return target_duration_for(longest, ceiling=self.settings.ceil_target_duration)

    def _live_playlist(self, *, ended: bool) -> MediaPlaylist:
        live = self._segments[self._window_start :]
        target = self._target_duration()
        # Parts are listed for the newest segments only: walk back from the live edge.
        with_parts, behind = len(live), sum(part.duration for part in self._parts)
        while with_parts > 0 and behind < _PARTS_LISTED_TARGETS * target:
            with_parts -= 1
            behind += live[with_parts].duration
        open_segment = None
        if self.settings.part_target is not None:
            open_segment = OpenSegment(
                map_uri=self._map_uri,
                program_date_time=(
                    self._program_date_time(self._pending[0]) if self._pending else None
                ),
                discontinuity=self._discontinuity_next,
                parts=tuple(self._parts),
                preload_hint=self._next_part_hint(),
            )
        return MediaPlaylist(
            segments=tuple(
                segment.to_playlist(with_parts=index >= with_parts)
                for index, segment in enumerate(live)
            ),
            target_duration=target,
            media_sequence=live[0].number if live else self._open_number(),
            discontinuity_sequence=self._dropped_discontinuities,
            playlist_type="EVENT" if self.settings.dvr_window is None else None,
            ended=ended,
            part_target=self.settings.part_target,
            open_segment=open_segment,
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
        self._notify()

    async def _write_text(self, key: str, text: str) -> None:
        await self.store.write(key, text.encode())


def _bitrate(size: int, duration: float) -> int:
    return math.ceil(size * 8 / duration) if duration > 0 else 0
