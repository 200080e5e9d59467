"""Media playlist text (RFC 8216 and its Low-Latency HLS revision), from pure functions.

A live playlist may carry partial segments: `EXT-X-PART` lines for the newest segments and for
the one still being cut, an `EXT-X-PRELOAD-HINT` naming the part that comes next, and the
server-control tags that tell a player it may block on a reload and how far back to hold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from stagecast.media.ladder import HLS_VERSION

# RFC 8216bis 4.4.3.8: PART-HOLD-BACK is at least twice the part target; three is advised.
PART_HOLD_BACK_TARGETS = 3


@dataclass(frozen=True, slots=True)
class PlaylistPart:
    """One partial segment (an `EXT-X-PART`)."""

    uri: str
    duration: float
    independent: bool  # starts with a keyframe


@dataclass(frozen=True, slots=True)
class PlaylistSegment:
    """One media segment as a playlist lists it."""

    uri: str
    duration: float
    map_uri: str
    program_date_time: datetime | None = None
    discontinuity: bool = False
    parts: tuple[PlaylistPart, ...] = ()  # listed only near the live edge


@dataclass(frozen=True, slots=True)
class OpenSegment:
    """The segment being cut: its parts so far and the part a player may ask for next."""

    map_uri: str
    program_date_time: datetime | None
    discontinuity: bool
    parts: tuple[PlaylistPart, ...]
    preload_hint: str


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    """A media playlist: live (sliding or EVENT, optionally low-latency) or VOD."""

    segments: tuple[PlaylistSegment, ...]
    target_duration: int
    media_sequence: int = 0
    discontinuity_sequence: int = 0
    playlist_type: Literal["EVENT", "VOD"] | None = None
    ended: bool = False
    part_target: float | None = None  # set: a low-latency playlist with partial segments
    open_segment: OpenSegment | None = None


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


def part_uri(sequence: int, index: int) -> str:
    """Return the name of part `index` of segment `sequence`."""
    return f"part_{sequence}_{index}.m4s"


def parse_part_uri(name: str) -> tuple[int, int] | None:
    """Return (segment sequence, part index) of a part's name, None for any other name."""
    stem = name.removeprefix("part_").removesuffix(".m4s")
    if stem == name or stem.count("_") != 1:
        return None
    sequence, index = stem.split("_")
    if not (sequence.isdigit() and index.isdigit()):
        return None
    return int(sequence), int(index)


def render_media_playlist(playlist: MediaPlaylist) -> str:
    """Return the text of a media playlist."""
    low_latency = playlist.part_target is not None and not playlist.ended
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{HLS_VERSION}",
        f"#EXT-X-TARGETDURATION:{playlist.target_duration}",
    ]
    if low_latency and playlist.part_target is not None:
        hold_back = PART_HOLD_BACK_TARGETS * playlist.part_target
        lines += [
            f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={hold_back:.3f}",
            f"#EXT-X-PART-INF:PART-TARGET={playlist.part_target:.3f}",
        ]
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{playlist.media_sequence}")
    if playlist.discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{playlist.discontinuity_sequence}")
    if playlist.playlist_type is not None:
        lines.append(f"#EXT-X-PLAYLIST-TYPE:{playlist.playlist_type}")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    map_uri: str | None = None
    for segment in playlist.segments:
        lines += _segment_head(segment, map_uri)
        map_uri = segment.map_uri
        if low_latency:
            lines += [_part_line(part) for part in segment.parts]
        lines += [f"#EXTINF:{segment.duration:.3f},", segment.uri]
    open_segment = playlist.open_segment
    if low_latency and open_segment is not None:
        if open_segment.parts:
            lines += _segment_head(open_segment, map_uri)
            lines += [_part_line(part) for part in open_segment.parts]
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{open_segment.preload_hint}"')
    if playlist.ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _segment_head(segment: PlaylistSegment | OpenSegment, map_uri: str | None) -> list[str]:
    lines = []
    if segment.discontinuity:
        lines.append("#EXT-X-DISCONTINUITY")
    if segment.map_uri != map_uri:
        lines.append(f'#EXT-X-MAP:URI="{segment.map_uri}"')
    if segment.program_date_time is not None:
        stamp = format_program_date_time(segment.program_date_time)
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{stamp}")
    return lines


def _part_line(part: PlaylistPart) -> str:
    independent = ",INDEPENDENT=YES" if part.independent else ""
    return f'#EXT-X-PART:DURATION={part.duration:.5f},URI="{part.uri}"{independent}'


@dataclass(frozen=True, slots=True)
class ListedSegment:
    """What a media playlist says of one of its segments (read back by crash recovery)."""

    program_date_time: datetime | None
    discontinuity: bool
    map_uri: str | None


def read_listed_segments(text: str) -> tuple[dict[str, ListedSegment], int]:
    """Return the segments a media playlist of ours lists, by URI, and its discontinuity
    sequence. Parts, hints and unknown tags are skipped; a bad date reads as none."""
    listed: dict[str, ListedSegment] = {}
    discontinuity_sequence = 0
    stamp: datetime | None = None
    discontinuity = False
    map_uri: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            value = line.partition(":")[2]
            discontinuity_sequence = int(value) if value.isdigit() else 0
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            try:
                stamp = datetime.fromisoformat(line.partition(":")[2])
            except ValueError:
                stamp = None
        elif line.startswith('#EXT-X-MAP:URI="'):
            map_uri = line.removeprefix('#EXT-X-MAP:URI="').partition('"')[0]
        elif line and not line.startswith("#"):
            listed[line] = ListedSegment(stamp, discontinuity, map_uri)
            stamp, discontinuity = None, False
    return listed, discontinuity_sequence


# Segments whose program date-times are this close to back to back are one continuous span.
_SPAN_JOIN_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class RecordedSpan:
    """A stretch of a recording that was continuous in wall time: it starts `offset` seconds
    into the recording, at `wall_clock`, and lasts `duration` seconds."""

    offset: float
    wall_clock: datetime
    duration: float


def recorded_spans(playlist: str) -> list[RecordedSpan]:
    """The spans of a VOD playlist, from its `EXT-X-PROGRAM-DATE-TIME` tags: a publisher that
    dropped and came back leaves a gap in wall time that the recording skips."""
    spans: list[RecordedSpan] = []
    offset = 0.0
    moment: datetime | None = None
    duration: float | None = None
    for raw in playlist.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            stamp = line.split(":", 1)[1].replace("Z", "+00:00")
            moment = datetime.fromisoformat(stamp).astimezone(UTC)
        elif line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line and not line.startswith("#") and duration is not None:
            if moment is not None:
                last = spans[-1] if spans else None
                if (
                    last is not None
                    and abs((moment - last.wall_clock).total_seconds() - last.duration)
                    <= _SPAN_JOIN_SECONDS
                ):
                    spans[-1] = RecordedSpan(last.offset, last.wall_clock, last.duration + duration)
                else:
                    spans.append(RecordedSpan(offset, moment, duration))
            offset += duration
            moment, duration = None, None
    return spans
