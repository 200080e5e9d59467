"""The ABR ladder, the master playlist and the ffmpeg command line: pure functions only.

One ffmpeg process per live stream reads the ingest on stdin and writes each rendition as
fragmented MP4 to its own pipe (`pipe:N`, the fd handed over with `pass_fds`), plus a JPEG
thumbnail every few seconds. Everything after that (segments, playlists) is the packager's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

InputFormat = Literal["flv", "webm"]

# The demuxer for each ingest: RTMP arrives as FLV, the browser's MediaRecorder sends WebM
# (ffmpeg's "matroska" demuxer reads both Matroska and WebM).
_DEMUXERS: dict[InputFormat, str] = {"flv": "flv", "webm": "matroska"}

# Cut a fragment at every keyframe (the packager groups them into segments), write the moov up
# front with no samples, and make every fragment self-contained (tfdt, default-base-is-moof).
MOVFLAGS = "+frag_keyframe+empty_moov+default_base_moof+skip_trailer+cmaf"

HLS_VERSION = 7
DEFAULT_AUDIO_BITRATE = 128_000
# Declared BANDWIDTH is a peak: the encoder's one-second VBV buffer lets a segment run over the
# average, and the container adds a few percent.
PEAK_FACTOR = 1.25
CONTAINER_OVERHEAD = 1.05
# Bits per pixel per frame for a source whose bitrate we do not know (H.264, live presets).
_BITS_PER_PIXEL = 0.1
_MIN_ESTIMATED_BITRATE = 300_000


@dataclass(frozen=True, slots=True)
class Rung:
    """A ladder step below the source: its short-side height and video bitrate."""

    height: int
    video_bitrate: int

    @property
    def name(self) -> str:
        """Return the rendition name, e.g. "720p"."""
        return f"{self.height}p"


DEFAULT_RUNGS: tuple[Rung, ...] = (
    Rung(720, 2_500_000),
    Rung(480, 1_200_000),
    Rung(360, 700_000),
)


@dataclass(frozen=True, slots=True)
class Rendition:
    """One output of the ladder."""

    name: str
    width: int
    height: int
    frame_rate: float
    video_bitrate: int
    audio_bitrate: int
    copy_video: bool  # pass the source H.264 through untouched

    @property
    def peak_bandwidth(self) -> int:
        """Return the estimated peak bits per second, for BANDWIDTH."""
        return math.ceil(
            (self.video_bitrate * PEAK_FACTOR + self.audio_bitrate) * CONTAINER_OVERHEAD
        )

    @property
    def average_bandwidth(self) -> int:
        """Return the estimated average bits per second, for AVERAGE-BANDWIDTH."""
        return math.ceil((self.video_bitrate + self.audio_bitrate) * CONTAINER_OVERHEAD)


def even_floor(value: float) -> int:
    """Return the largest even integer not above `value` (at least 2): x264 needs even sizes."""
    return max(2, int(value) - int(value) % 2)


def even_round(value: float) -> int:
    """Return the even integer nearest `value` (at least 2)."""
    return max(2, 2 * round(value / 2))


def estimate_bitrate(width: int, height: int, frame_rate: float) -> int:
    """Return a video bitrate that suits a live H.264 encode of this size."""
    return max(_MIN_ESTIMATED_BITRATE, round(width * height * frame_rate * _BITS_PER_PIXEL))


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Return even dimensions with the short side at `short_side`, keeping the aspect ratio."""
    if width >= height:
        return even_round(width * short_side / height), even_floor(short_side)
    return even_floor(short_side), even_round(height * short_side / width)


def can_pass_through(video_codec: str) -> bool:
    """Return whether a source in this codec can be passed through untouched (H.264)."""
    return video_codec.lower() in {"h264", "avc1", "avc"}


def build_ladder(
    *,
    width: int,
    height: int,
    frame_rate: float,
    video_codec: str,
    video_bitrate: int | None = None,
    rungs: Sequence[Rung] = DEFAULT_RUNGS,
    audio_bitrate: int = DEFAULT_AUDIO_BITRATE,
    passthrough: bool = True,
) -> tuple[Rendition, ...]:
    """Return the source rendition plus every rung strictly smaller than it, largest first.

    The short side decides ("720p" is 1280x720 or 720x1280). H.264 sources are passed through
    unless `passthrough` is off (their keyframes are too far apart for short segments);
    anything else is transcoded at the source size (rounded down to even dimensions).
    """
    if width <= 0 or height <= 0 or frame_rate <= 0:
        raise ValueError(f"invalid source {width}x{height}@{frame_rate}")
    copy_video = passthrough and can_pass_through(video_codec)
    source_width, source_height = width, height
    if not copy_video:
        source_width, source_height = even_floor(width), even_floor(height)
    source_bitrate = video_bitrate or estimate_bitrate(source_width, source_height, frame_rate)
    renditions = [
        Rendition(
            name="source",
            width=source_width,
            height=source_height,
            frame_rate=frame_rate,
            video_bitrate=source_bitrate,
            audio_bitrate=audio_bitrate,
            copy_video=copy_video,
        )
    ]
    short_side = min(width, height)
    for rung in sorted(rungs, key=lambda rung: rung.height, reverse=True):
        if rung.height >= short_side:
            continue  # never upscale, and the source already covers this size
        rung_width, rung_height = scaled_size(width, height, rung.height)
        rendition = Rendition(
            name=rung.name,
            width=min(rung_width, even_floor(width)),
            height=min(rung_height, even_floor(height)),
            frame_rate=frame_rate,
            video_bitrate=min(rung.video_bitrate, source_bitrate),
            audio_bitrate=audio_bitrate,
            copy_video=False,
        )
        same = (rendition.width, rendition.height, rendition.video_bitrate)
        if not copy_video and same == (source_width, source_height, source_bitrate):
            continue  # a second encode of the transcoded source, byte for byte
        renditions.append(rendition)
    return tuple(renditions)


# --- master playlist -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Variant:
    """One `#EXT-X-STREAM-INF` entry."""

    uri: str
    bandwidth: int
    codecs: str
    average_bandwidth: int | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None


def variant_for(rendition: Rendition, *, uri: str, codecs: str) -> Variant:
    """Return the master playlist entry of a rendition, with estimated bandwidths."""
    return Variant(
        uri=uri,
        bandwidth=rendition.peak_bandwidth,
        average_bandwidth=rendition.average_bandwidth,
        codecs=codecs,
        width=rendition.width,
        height=rendition.height,
        frame_rate=rendition.frame_rate,
    )


def render_master_playlist(variants: Sequence[Variant]) -> str:
    """Return the master playlist text for the variants, in the given order."""
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for variant in variants:
        attributes = [f"BANDWIDTH={variant.bandwidth}"]
        if variant.average_bandwidth is not None:
            attributes.append(f"AVERAGE-BANDWIDTH={variant.average_bandwidth}")
        if variant.width and variant.height:
            attributes.append(f"RESOLUTION={variant.width}x{variant.height}")
        if variant.frame_rate:
            attributes.append(f"FRAME-RATE={variant.frame_rate:.3f}")
        attributes.append(f'CODECS="{variant.codecs}"')
        lines += [f"#EXT-X-STREAM-INF:{','.join(attributes)}", variant.uri]
    return "\n".join(lines) + "\n"


# --- ffmpeg ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RenditionOutput:
    """Where ffmpeg writes one rendition: `pipe:N` (an inherited fd) or a file path."""

    rendition: Rendition
    target: str


@dataclass(frozen=True, slots=True)
class ThumbnailOutput:
    """A JPEG every `interval` seconds, overwriting `target` atomically (or to `pipe:N`)."""

    target: str
    interval: float = 5.0
    width: int = 640


def _seconds(value: float) -> str:
    return f"{value:g}"


def video_encode_args(rendition: Rendition, *, segment_duration: float) -> list[str]:
    """Return the video codec arguments of one output."""
    if rendition.copy_video:
        return ["-c:v", "copy"]
    gop = max(1, math.ceil(rendition.frame_rate * segment_duration))
    bitrate = str(rendition.video_bitrate)
    return [
        "-c:v", "libx264",
        "-preset", "veryfast",
        "-tune", "zerolatency",
        "-pix_fmt", "yuv420p",
        "-vf", f"scale={rendition.width}:{rendition.height}",
        "-b:v", bitrate,
        "-maxrate", bitrate,
        "-bufsize", bitrate,
        # Keyframes on the segment grid, by time (sources can be variable frame rate) and by
        # count, and never elsewhere: the packager cuts segments only at keyframes.
        "-force_key_frames", f"expr:gte(t,n_forced*{_seconds(segment_duration)})",
        "-g", str(gop),
        "-keyint_min", str(gop),
        "-sc_threshold", "0",
    ]  # fmt: skip


def audio_encode_args(audio_codec: str | None, *, bitrate: int) -> list[str]:
    """Return the audio codec arguments: AAC passes through, anything else becomes AAC."""
    if audio_codec is None:
        return ["-an"]
    if audio_codec.lower() in {"aac", "mp4a"}:
        return ["-c:a", "copy"]
    return ["-c:a", "aac", "-b:a", str(bitrate)]


def thumbnail_args(thumbnail: ThumbnailOutput, *, max_width: int) -> list[str]:
    """Return the arguments of the thumbnail output (never wider than the source)."""
    width = even_floor(min(thumbnail.width, max_width))
    muxer = (
        ["-f", "image2pipe"]
        if thumbnail.target.startswith("pipe:")
        else ["-f", "image2", "-update", "1", "-atomic_writing", "1"]
    )
    return [
        "-map", "0:v:0",
        "-vf", f"fps=1/{_seconds(thumbnail.interval)},scale={width}:-2",
        "-c:v", "mjpeg",
        "-q:v", "5",
        *muxer,
        thumbnail.target,
    ]  # fmt: skip


def placeholder_thumbnail_args(ffmpeg: str, *, width: int = 320, height: int = 180) -> list[str]:
    """Return the command that writes a plain dark JPEG to stdout: a live stream's thumbnail
    until its first frame has been encoded."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
        "-f", "lavfi", "-i", f"color=c=0x18181b:s={width}x{height}",
        "-frames:v", "1", "-c:v", "mjpeg", "-q:v", "5", "-f", "image2pipe", "pipe:1",
    ]  # fmt: skip


def build_ffmpeg_args(
    ffmpeg: str,
    *,
    input_format: InputFormat,
    outputs: Sequence[RenditionOutput],
    audio_codec: str | None,
    segment_duration: float = 1.0,
    fragment_duration: float | None = None,
    thumbnail: ThumbnailOutput | None = None,
    loglevel: str = "warning",
) -> list[str]:
    """Return the ffmpeg command line: ingest on stdin, one fragmented MP4 per rendition.

    `fragment_duration` also cuts fragments between keyframes (for partial segments later);
    by default there is one fragment per keyframe interval.
    """
    if not outputs:
        raise ValueError("at least one rendition output is needed")
    # -y: a restarted ffmpeg must overwrite the previous thumbnail instead of refusing to start.
    args = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", loglevel]
    args += ["-f", _DEMUXERS[input_format], "-i", "pipe:0"]
    fragmenting = ["-f", "mp4", "-movflags", MOVFLAGS]
    if fragment_duration is not None:
        fragmenting += ["-frag_duration", str(round(fragment_duration * 1_000_000))]
    # Hand each fragment to the pipe as soon as it is complete, not when the buffer fills.
    fragmenting += ["-flush_packets", "1"]
    for output in outputs:
        rendition = output.rendition
        args += ["-map", "0:v:0"]
        if audio_codec is not None:
            args += ["-map", "0:a:0"]
        args += video_encode_args(rendition, segment_duration=segment_duration)
        args += audio_encode_args(audio_codec, bitrate=rendition.audio_bitrate)
        args += [*fragmenting, output.target]
    if thumbnail is not None:
        max_width = max(output.rendition.width for output in outputs)
        args += thumbnail_args(thumbnail, max_width=max_width)
    return args
