"""The edge-GOP MP4: re-encode only the partial GOPs at a clip's edges, copy the rest.

A recorded segment starts at a keyframe, so every whole segment inside a clip's range can be
stream-copied as it is; only the frames from the range's start to the next segment and from
the last segment start to the range's end are decoded and encoded again (a second of video
each at most, for a 1 s segment grid). The three parts are joined by ffmpeg's concat demuxer
without touching the packets.

One H.264 track, one sample entry: its `avcC` must hold every parameter set the samples refer
to. The edges are encoded with the source's profile and level and with their own SPS/PPS ids
(x264's `sps-id`), so the source's parameter sets and the edges' sit side by side in one `avcC`
(ISO/IEC 14496-15 allows up to 31 SPS and 255 PPS there), and a decoder that reads only the
sample entry decodes every frame. When that cannot hold (another codec or profile, ids that
collide, a discontinuity inside the clip) the caller falls back to re-encoding the whole clip.

Frame selection, here and in the fallback: frame i belongs to the clip when
`start - h <= t_i < end - h` (h: half a frame), so a range that ends on a segment boundary
ends there whatever the milliseconds of rounding in the playlist's times.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from stagecast.clips.ranges import Segment
from stagecast.media.fmp4 import MediaFormatError, find_box, iter_boxes, parse_mdhd_timescale

# x264 profiles by profile_idc: the edges are encoded in the source's.
X264_PROFILES = {66: "baseline", 77: "main", 100: "high"}
# The edges are short: a slower preset than the fallback's costs little and keeps the picture
# close to the source's around the cut.
EDGE_VIDEO_CODEC = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
_MAX_SPS_ID = 31
_VISUAL_SAMPLE_ENTRY_SIZE = 78
_CONTAINERS = frozenset({"moov", "trak", "mdia", "minf", "stbl"})
# trun flags (ISO/IEC 14496-12 8.8.8).
_TRUN_DATA_OFFSET = 0x000001
_TRUN_FIRST_SAMPLE_FLAGS = 0x000004
_TRUN_CTS_OFFSET = 0x000800
_TRUN_SAMPLE_FIELDS = (0x000100, 0x000200, 0x000400, _TRUN_CTS_OFFSET)


class SpliceImpossible(Exception):
    """The clip cannot be joined from copied segments and re-encoded edges (why: the text)."""


# --- which frames come from where ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edge:
    """Frames to re-encode: `frames` of them after the first `skip` of `segments`' frames.

    Counted in frames, not seconds: a segment file's timestamps need not start where the
    playlist's timeline puts it (an encoder's audio priming shifts them), its frames do."""

    segments: tuple[Segment, ...]
    skip: int
    frames: int


@dataclass(frozen=True, slots=True)
class SplicePlan:
    """A clip as (head edge?, whole segments copied, tail edge?), and its exact video span."""

    head: Edge | None
    middle: tuple[Segment, ...]
    tail: Edge | None
    video_start: float  # the first frame's time on the recording's timeline
    video_end: float  # the end of the last frame


def first_frame_at_or_after(segment_start: float, time: float, frame: float) -> float:
    """The time of the first frame of a segment's grid that is not before `time`."""
    steps = max(0, math.ceil((time - segment_start) / frame - 1e-6))
    return segment_start + steps * frame


def plan_splice(
    segments: Sequence[Segment], *, start: float, end: float, frame: float
) -> SplicePlan:
    """Split [start, end) at the segment boundaries inside it (`frame`: one frame's seconds)."""
    if not segments:
        raise SpliceImpossible("no segments")
    half = frame / 2
    boundaries = [s.start for s in segments] + [segments[-1].end]
    first = next((k for k in boundaries if k >= start - half), None)
    last = next((k for k in reversed(boundaries) if k <= end + half), None)
    if first is None or last is None or first > last + half:
        raise SpliceImpossible("the range lies inside one segment")
    head = tail = None
    head_segment = next(s for s in segments if s.end > start - half)
    video_start = first_frame_at_or_after(head_segment.start, start - half, frame)
    if first - video_start > half:
        skip = round((video_start - head_segment.start) / frame)
        head = Edge((head_segment,), skip, round((first - video_start) / frame))
    middle = tuple(s for s in segments if s.start >= first - half and s.end <= last + half)
    tail_segment = next((s for s in segments if abs(s.start - last) <= half), None)
    video_end = last
    if tail_segment is not None and end - half > last:
        video_end = first_frame_at_or_after(tail_segment.start, end - half, frame)
        if video_end > tail_segment.end + half:
            raise SpliceImpossible("the range ends past the recorded segments")
        tail = Edge((tail_segment,), 0, round((video_end - last) / frame))
    return SplicePlan(head, middle, tail, video_start, video_end)


# --- H.264 parameter sets --------------------------------------------------------------------


def _rbsp(nal: bytes) -> bytes:
    """A NAL unit's payload without its header byte and emulation prevention bytes."""
    return nal[1:].replace(b"\x00\x00\x03", b"\x00\x00")


def _read_ue(data: bytes, bit: int) -> tuple[int, int]:
    """An unsigned Exp-Golomb value at `bit`, and the bit after it."""
    zeros = 0
    while True:
        if bit // 8 >= len(data):
            raise MediaFormatError("Exp-Golomb value runs past the parameter set")
        if data[bit // 8] >> (7 - bit % 8) & 1:
            break
        zeros += 1
        bit += 1
    bit += 1
    value = 0
    for _ in range(zeros):
        if bit // 8 >= len(data):
            raise MediaFormatError("Exp-Golomb value runs past the parameter set")
        value = value << 1 | (data[bit // 8] >> (7 - bit % 8) & 1)
        bit += 1
    return (1 << zeros) - 1 + value, bit


def sps_id(sps: bytes) -> int:
    """seq_parameter_set_id of an SPS NAL unit (after profile, constraints and level)."""
    return _read_ue(_rbsp(sps)[3:], 0)[0]


def pps_ids(pps: bytes) -> tuple[int, int]:
    """(pic_parameter_set_id, seq_parameter_set_id) of a PPS NAL unit."""
    payload = _rbsp(pps)
    pps_value, bit = _read_ue(payload, 0)
    return pps_value, _read_ue(payload, bit)[0]


@dataclass(frozen=True, slots=True)
class AvcConfig:
    """An `avcC` payload (AVCDecoderConfigurationRecord)."""

    profile: int
    compatibility: int
    level: int
    length_size: int
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]
    extension: bytes  # High profiles' chroma/bit depth fields, kept as they are

    def sps_ids(self) -> set[int]:
        return {sps_id(nal) for nal in self.sps}

    def pps_ids(self) -> set[int]:
        return {pps_ids(nal)[0] for nal in self.pps}


def parse_avcc(payload: bytes) -> AvcConfig:
    """Read an `avcC` payload."""
    if len(payload) < 7 or payload[0] != 1:
        raise MediaFormatError("not an AVCDecoderConfigurationRecord")
    offset = 6
    sets: list[list[bytes]] = []
    for count_at in (5, None):
        if count_at is None:
            count, offset = payload[offset], offset + 1
        else:
            count = payload[count_at] & 0x1F
        found = []
        for _ in range(count):
            (size,) = struct.unpack_from(">H", payload, offset)
            found.append(payload[offset + 2 : offset + 2 + size])
            offset += 2 + size
        if offset > len(payload):
            raise MediaFormatError("avcC truncated")
        sets.append(found)
    return AvcConfig(
        profile=payload[1],
        compatibility=payload[2],
        level=payload[3],
        length_size=(payload[4] & 0x3) + 1,
        sps=tuple(sets[0]),
        pps=tuple(sets[1]),
        extension=payload[offset:],
    )


def build_avcc(config: AvcConfig) -> bytes:
    """The `avcC` payload of a configuration."""
    parts = [
        bytes([1, config.profile, config.compatibility, config.level]),
        bytes([0xFC | (config.length_size - 1), 0xE0 | len(config.sps)]),
        *(struct.pack(">H", len(nal)) + nal for nal in config.sps),
        bytes([len(config.pps)]),
        *(struct.pack(">H", len(nal)) + nal for nal in config.pps),
        config.extension,
    ]
    return b"".join(parts)


def free_parameter_set_ids(source: AvcConfig, count: int) -> list[int]:
    """Ids neither the source's SPSs nor its PPSs use (x264 gives its PPS the SPS's id)."""
    taken = source.sps_ids() | source.pps_ids()
    free = [n for n in range(_MAX_SPS_ID + 1) if n not in taken]
    if len(free) < count:
        raise SpliceImpossible("no free parameter set ids")
    return free[:count]


def merge_avcc(source: AvcConfig, edges: Sequence[AvcConfig]) -> AvcConfig:
    """One configuration holding the source's parameter sets first, then the edges'."""
    sps, pps = list(source.sps), list(source.pps)
    seen_sps, seen_pps = source.sps_ids(), source.pps_ids()
    for edge in edges:
        if edge.length_size != source.length_size:
            raise SpliceImpossible("the edges' NAL length size differs from the source's")
        if edge.profile != source.profile:
            raise SpliceImpossible(f"edge profile {edge.profile} is not {source.profile}")
        if edge.level > source.level:
            raise SpliceImpossible(f"edge level {edge.level} is above {source.level}")
        for nal in edge.sps:
            if nal in sps:
                continue
            if sps_id(nal) in seen_sps:
                raise SpliceImpossible(f"SPS id {sps_id(nal)} is used twice")
            seen_sps.add(sps_id(nal))
            sps.append(nal)
        for nal in edge.pps:
            if nal in pps:
                continue
            if pps_ids(nal)[0] in seen_pps:
                raise SpliceImpossible(f"PPS id {pps_ids(nal)[0]} is used twice")
            seen_pps.add(pps_ids(nal)[0])
            pps.append(nal)
    return AvcConfig(
        source.profile,
        source.compatibility,
        source.level,
        source.length_size,
        tuple(sps),
        tuple(pps),
        source.extension,
    )


def edge_encode_args(source: AvcConfig, *, parameter_set_id: int, timescale: int) -> list[str]:
    """x264 arguments whose output can share the source's sample entry: same profile and
    level, no B-frames (no reordering delay to reconcile at the joins), its own SPS/PPS id,
    the source's track timescale."""
    profile = X264_PROFILES.get(source.profile)
    if profile is None:
        raise SpliceImpossible(f"H.264 profile {source.profile} has no matching x264 profile")
    return [
        *EDGE_VIDEO_CODEC,
        "-profile:v", profile,
        "-level:v", f"{source.level / 10:.1f}",
        "-bf", "0",
        "-x264-params", f"sps-id={parameter_set_id}",
        "-video_track_timescale", str(timescale),
    ]  # fmt: skip


# --- boxes of a progressive MP4 --------------------------------------------------------------


def _box(box_type: str, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), box_type.encode("latin-1")) + payload


def top_level_boxes(data: bytes) -> Iterator[tuple[str, int, int]]:
    """(type, offset, size) of each top-level box of a file."""
    offset = 0
    while offset < len(data):
        size, raw = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        elif size == 0:
            size = len(data) - offset
        if size < header or offset + size > len(data):
            raise MediaFormatError(f"top-level box {raw!r} has a bad size")
        yield raw.decode("latin-1"), offset, size
        offset += size


def trun_has_composition_offsets(trun: bytes) -> bool:
    """Whether a `trun` payload gives any sample a non-zero composition offset."""
    flags = struct.unpack_from(">I", trun, 0)[0] & 0xFFFFFF
    if not flags & _TRUN_CTS_OFFSET:
        return False
    count = struct.unpack_from(">I", trun, 4)[0]
    offset = 8 + 4 * sum(1 for bit in (_TRUN_DATA_OFFSET, _TRUN_FIRST_SAMPLE_FLAGS) if flags & bit)
    fields = sum(1 for bit in _TRUN_SAMPLE_FIELDS if flags & bit)
    values = struct.unpack_from(f">{count * fields}I", trun, offset)
    return any(values[fields - 1 :: fields])


def _moov_of(data: bytes) -> bytes:
    for box_type, offset, size in top_level_boxes(data):
        if box_type == "moov":
            return data[offset + 8 : offset + size]
    raise MediaFormatError("no moov box")


def track_handlers(init: bytes) -> list[str]:
    """The handler type of each track of an MP4's `moov`, in order ("vide", "soun"…)."""
    handlers = []
    for trak in iter_boxes(_moov_of(init)):
        hdlr = find_box(trak.payload, "mdia", "hdlr") if trak.type == "trak" else None
        if hdlr is not None:
            handlers.append(hdlr.payload[8:12].decode("latin-1"))
    return handlers


def video_timescale(init: bytes) -> int:
    """The video track's media timescale (its `mdhd`)."""
    for trak in iter_boxes(_moov_of(init)):
        if trak.type == "trak" and _is_video_trak(trak.payload):
            mdhd = find_box(trak.payload, "mdia", "mdhd")
            if mdhd is not None:
                return parse_mdhd_timescale(mdhd.payload)
    raise MediaFormatError("no video track")


def video_avcc_of_moov(moov: bytes) -> bytes | None:
    """The `avcC` payload of the first video track of a `moov` payload, if it is avc1."""
    for trak in iter_boxes(moov):
        if trak.type != "trak":
            continue
        if not _is_video_trak(trak.payload):
            continue
        stsd = find_box(trak.payload, "mdia", "minf", "stbl", "stsd")
        if stsd is None:
            return None
        entry = next(iter_boxes(stsd.payload[8:]), None)
        if entry is None or entry.type != "avc1":
            return None
        for child in iter_boxes(entry.payload[_VISUAL_SAMPLE_ENTRY_SIZE:]):
            if child.type == "avcC":
                return child.payload
        return None
    return None


def avcc_of_file(data: bytes) -> bytes | None:
    """The video `avcC` of an MP4 file (init segment or whole file)."""
    return video_avcc_of_moov(_moov_of(data))


def _rewrite(payload: bytes, box_type: str, *, avcc: bytes | None, shift: int) -> bytes:
    """A box's payload with the video sample entry's avcC replaced (`avcc` is None outside the
    video track) and every chunk offset moved by `shift`."""
    if box_type in _CONTAINERS:
        if box_type == "trak" and not _is_video_trak(payload):
            avcc = None
        return b"".join(
            _box(child.type, _rewrite(child.payload, child.type, avcc=avcc, shift=shift))
            for child in iter_boxes(payload)
        )
    if box_type == "stsd" and avcc is not None:
        entries = []
        for entry in iter_boxes(payload[8:]):
            body = entry.payload
            if entry.type == "avc1":
                fixed, children = body[:_VISUAL_SAMPLE_ENTRY_SIZE], body[_VISUAL_SAMPLE_ENTRY_SIZE:]
                body = fixed + b"".join(
                    _box(c.type, avcc if c.type == "avcC" else c.payload)
                    for c in iter_boxes(children)
                )
            entries.append(_box(entry.type, body))
        return payload[:8] + b"".join(entries)
    if box_type in {"stco", "co64"}:
        count = struct.unpack_from(">I", payload, 4)[0]
        kind = "Q" if box_type == "co64" else "I"
        moved = [value + shift for value in struct.unpack_from(f">{count}{kind}", payload, 8)]
        if kind == "I" and moved and max(moved) > 0xFFFFFFFF:
            raise SpliceImpossible("the MP4 is too large for 32-bit chunk offsets")
        return payload[:8] + struct.pack(f">{count}{kind}", *moved)
    return payload


def _is_video_trak(trak: bytes) -> bool:
    hdlr = find_box(trak, "mdia", "hdlr")
    return hdlr is not None and hdlr.payload[8:12] == b"vide"


def with_avcc_and_fast_start(data: bytes, avcc: bytes) -> bytes:
    """An MP4 file with its video track's `avcC` replaced and the `moov` moved before the
    media (fast start: a browser can play it while it downloads)."""
    boxes = list(top_level_boxes(data))
    moovs = [b for b in boxes if b[0] == "moov"]
    mdats = [b for b in boxes if b[0] == "mdat"]
    if len(moovs) != 1 or len(mdats) != 1:
        raise SpliceImpossible("expected one moov and one mdat")
    _, moov_offset, moov_size = moovs[0]
    moov_payload = data[moov_offset + 8 : moov_offset + moov_size]
    unshifted = _box("moov", _rewrite(moov_payload, "moov", avcc=avcc, shift=0))
    order = [b for b in boxes if b[0] == "ftyp"] + [("moov", -1, 0)]
    order += [b for b in boxes if b[0] not in {"ftyp", "moov"}]
    position, new_mdat_offset = 0, 0
    for box_type, _, size in order:
        if box_type == "moov":
            position += len(unshifted)
            continue
        if box_type == "mdat":
            new_mdat_offset = position
        position += size
    shift = new_mdat_offset - mdats[0][1]
    moov = _box("moov", _rewrite(moov_payload, "moov", avcc=avcc, shift=shift))
    return b"".join(
        moov if box_type == "moov" else data[offset : offset + size]
        for box_type, offset, size in order
    )
