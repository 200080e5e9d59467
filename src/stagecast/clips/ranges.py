"""Which recorded segments a clip covers, and the HLS playlists that play them.

A stream's recording is a list of segments per rendition, each starting at a keyframe; the
recording's timeline is the sum of their durations (the VOD's position, and during the stream
the position of what has been packaged so far). A clip's playlist lists the segments that
overlap its range, so it starts at the keyframe at or before the range's start and ends with
the segment that holds its end; `EXT-X-START` (PRECISE) tells the player where the range
begins inside the first one. The MP4 rendition (render.py) is cut to the exact frames.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from stagecast.media.playlists import (
    MediaPlaylist,
    PlaylistSegment,
    render_media_playlist,
    target_duration_for,
)

CLIP_PLAYLIST = "index.m3u8"
CLIP_MASTER = "master.m3u8"
# Rounding of segment times (ms): a range that ends where a segment starts does not need it.
_EPSILON = 0.0005
_VARIANT_URI = re.compile(r"^([A-Za-z0-9_-]+)/(?:index|vod)\.m3u8$")


@dataclass(frozen=True, slots=True)
class Segment:
    """One recorded segment of a rendition, placed on the recording's timeline."""

    uri: str  # its name in the rendition's folder (seg_<n>.m4s)
    duration: float
    map_uri: str  # its init segment's name (init.mp4, init_<n>.mp4)
    start: float  # seconds into the recording
    discontinuity: bool = False

    @property
    def end(self) -> float:
        return self.start + self.duration

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Segment:
        return cls(**data)


def place_segments(entries: Iterable[tuple[str, float, str, bool]]) -> list[Segment]:
    """The recording's segments (uri, duration, init, discontinuity) on one timeline."""
    placed: list[Segment] = []
    position = 0.0
    for uri, duration, map_uri, discontinuity in entries:
        placed.append(Segment(uri, duration, map_uri, round(position, 6), discontinuity))
        position += duration
    return placed


def read_media_playlist(text: str) -> list[Segment]:
    """The segments a VOD media playlist of ours lists, from the recording's start."""
    entries: list[tuple[str, float, str, bool]] = []
    map_uri, duration, discontinuity = "init.mp4", None, False
    for raw in text.splitlines():
        line = raw.strip()
        if line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line.startswith('#EXT-X-MAP:URI="'):
            map_uri = line.removeprefix('#EXT-X-MAP:URI="').partition('"')[0]
        elif line.startswith("#EXTINF:"):
            duration = float(line.removeprefix("#EXTINF:").partition(",")[0])
        elif line and not line.startswith("#") and duration is not None:
            entries.append((line, duration, map_uri, discontinuity))
            duration, discontinuity = None, False
    return place_segments(entries)


def covering(segments: Sequence[Segment], start: float, end: float) -> list[Segment]:
    """The segments that hold any of [start, end), in order."""
    return [s for s in segments if s.start < end - _EPSILON and s.end > start + _EPSILON]


def recorded_span(segments: Sequence[Segment]) -> float:
    """Seconds of recording the segments reach to (the live edge while live)."""
    return segments[-1].end if segments else 0.0


def render_clip_playlist(segments: Sequence[Segment], *, start: float, base: str) -> str:
    """A VOD playlist over `segments` (names prefixed by `base`), starting play at `start`."""
    entries = tuple(
        PlaylistSegment(
            uri=f"{base}{s.uri}",
            duration=s.duration,
            map_uri=f"{base}{s.map_uri}",
            discontinuity=s.discontinuity and index > 0,
        )
        for index, s in enumerate(segments)
    )
    text = render_media_playlist(
        MediaPlaylist(
            segments=entries,
            target_duration=target_duration_for(s.duration for s in segments),
            playlist_type="VOD",
            ended=True,
        )
    )
    offset = max(0.0, start - segments[0].start)
    # RFC 8216 4.3.5.2: play from the range's first frame, not the keyframe before it.
    return text.replace(
        "#EXT-X-INDEPENDENT-SEGMENTS\n",
        f"#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-START:TIME-OFFSET={offset:.3f},PRECISE=YES\n",
        1,
    )


def variant_names(master: str) -> list[str]:
    """The renditions a stream's master playlist lists, top first."""
    return [found.group(1) for line in master.splitlines() if (found := _VARIANT_URI.match(line))]


def render_clip_master(stream_master: str, renditions: Iterable[str]) -> str:
    """The stream's master playlist with its variants pointed at the clip's playlists; the
    variants the clip has no segments of are left out."""
    keep = set(renditions)
    lines: list[str] = []
    pending: str | None = None
    for raw in stream_master.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-STREAM-INF:"):
            pending = line
            continue
        found = _VARIANT_URI.match(line)
        if pending is not None and found is not None:
            if found.group(1) in keep:
                lines += [pending, f"{found.group(1)}/{CLIP_PLAYLIST}"]
            pending = None
        elif line:
            lines.append(line)
    return "\n".join(lines) + "\n"
