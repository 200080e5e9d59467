"""How far apart the publisher's keyframes are, and what the creator is told about it.

A segment, and an independent partial segment, can only start at a keyframe. A source with a
keyframe every 8.3 s (OBS's default: 250 frames at 30 fps) passed through gives 8.3-second
segments, and low-latency players stall until they sit a whole interval behind the live edge.
The RTMP ingest measures the interval from the FLV keyframe flags (`KeyframeCadence`), before
ffmpeg starts and for as long as the publisher sends, so that the ladder can re-encode the top
rendition with a keyframe every segment and the creator is told (`StreamHealth`, sent as
`stream:health` and shown on the go-live page and the dashboard).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from stagecast.media.rtmp import FlvTag, TagType

KEYFRAME_WARNING = "keyframe_interval_too_long"
# The longest of this many recent intervals is the one reported: encoders with scene-cut
# detection (x264's default) put extra keyframes between the regular ones.
RECENT_INTERVALS = 8
# Frame timing: 60 frames at 29.97 fps are 2.002 s, and FLV timestamps are whole milliseconds.
_SLACK = 0.1


def recommended_keyframe_interval(segment_seconds: float, max_keyframe_seconds: float) -> int:
    """Return the keyframe interval to set in OBS, in whole seconds (what OBS accepts)."""
    wanted = math.ceil(min(2.0, max(1.0, segment_seconds)))  # the packager's segment target
    return max(1, min(wanted, math.floor(max_keyframe_seconds)))


class KeyframeCadence:
    """The keyframe interval of one RTMP publish, from its video tags' timestamps."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        # Once seen, for the rest of the publish: an encoder that made one long interval
        # makes more, and a warning that comes and goes helps nobody.
        self.too_long = False
        self._last_keyframe: int | None = None  # milliseconds
        self._intervals: deque[float] = deque(maxlen=RECENT_INTERVALS)

    @property
    def interval(self) -> float | None:
        """Return the longest recent interval in seconds; None before the second keyframe."""
        return max(self._intervals, default=None)

    @property
    def known(self) -> bool:
        """Whether the interval is measured, or known to be over the limit."""
        return bool(self._intervals) or self.too_long

    def observe(self, tag: FlvTag) -> bool:
        """Take the next tag; return True when what is known changed (the first measure, the
        limit passed, the first measure after the limit was passed)."""
        if tag.tag_type != TagType.VIDEO or tag.is_sequence_header:
            return False
        before = (bool(self._intervals), self.too_long)
        last = self._last_keyframe
        if last is not None and tag.timestamp < last:
            last = self._last_keyframe = None  # the timeline restarted: measure afresh
        if tag.is_keyframe:
            if last is not None and tag.timestamp > last:
                self._intervals.append((tag.timestamp - last) / 1000)
            self._last_keyframe = tag.timestamp
        elif last is not None and self._over_limit((tag.timestamp - last) / 1000):
            self.too_long = True  # the next keyframe is late already: no need to wait for it
        if self._over_limit(self.interval or 0):
            self.too_long = True
        return (bool(self._intervals), self.too_long) != before

    def _over_limit(self, seconds: float) -> bool:
        return seconds > self.limit + _SLACK


@dataclass(frozen=True, slots=True)
class StreamHealth:
    """What the creator is told about their source's keyframes."""

    keyframe_interval: float | None  # seconds (the longest lately); None until measured
    max_keyframe_interval: float  # what this server asks for
    keyframes_too_far: bool  # and the source would otherwise be passed through
    reencoding: bool  # the top rendition is re-encoded with a keyframe every segment

    @property
    def warning(self) -> str | None:
        """Return the warning's stable code, or None when all is well."""
        return KEYFRAME_WARNING if self.keyframes_too_far else None

    @property
    def message(self) -> str | None:
        """Return what the creator should read (and do), or None when all is well."""
        if not self.keyframes_too_far:
            return None
        apart = (
            f"{self.keyframe_interval:.1f} s apart"
            if self.keyframe_interval is not None
            else f"more than {self.max_keyframe_interval:g} s apart"
        )
        effect = (
            "the best quality is re-encoded to keep segments short, which costs server time "
            "and some picture quality"
            if self.reencoding
            else "segments are that long, so players without low-latency support fall far "
            "behind and quality changes wait for a keyframe"
        )
        return (
            f"Your keyframes are {apart}: {effect}. In OBS set Settings → Output → "
            "Keyframe Interval to 1 s (or 2 s)."
        )

    def payload(self) -> dict[str, Any]:
        """Return the `stream:health` payload (and the API's `stream_health`)."""
        interval = self.keyframe_interval
        return {
            "keyframe_interval": round(interval, 3) if interval is not None else None,
            "max_keyframe_interval": self.max_keyframe_interval,
            "reencoding": self.reencoding,
            "warning": self.warning,
            "message": self.message,
        }
