"""Parse fragmented MP4 (CMAF) as ffmpeg writes it to a pipe.

The stream is a sequence of top-level boxes: an init segment (`ftyp` + `moov`), then fragments
(optional `styp`/`prft`/`emsg`/`sidx`, then `moof` + `mdat`). `FragmentedMP4Parser` is sans-IO:
feed it bytes in any chunking and it returns each init segment and fragment once complete, with
the timing and keyframe facts the packager needs. Only the boxes on that path are parsed.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

# ffmpeg writes one fragment per keyframe interval; even 100 Mbit/s for 2 s fits in 32 MiB, so
# anything larger is a corrupt size field, not media worth buffering.
MAX_BOX_SIZE = 32 * 1024 * 1024
READ_CHUNK_SIZE = 64 * 1024

_FRAGMENT_PREFIX_BOXES = frozenset({"styp", "prft", "emsg", "sidx", "ssix"})
_IGNORED_BOXES = frozenset({"free", "skip", "mfra", "udta", "meta", "pdin", "uuid"})
_STREAM_START_BOXES = frozenset({"ftyp", "moov", "free", "skip"})

# Sample flags (ISO/IEC 14496-12 8.8.3.1).
_SAMPLE_IS_NON_SYNC = 0x0001_0000
_DEPENDS_ON_SHIFT = 24
_DEPENDS_ON_OTHERS = 1

# tfhd flags.
_TFHD_BASE_DATA_OFFSET = 0x000001
_TFHD_SAMPLE_DESCRIPTION_INDEX = 0x000002
_TFHD_DEFAULT_DURATION = 0x000008
_TFHD_DEFAULT_SIZE = 0x000010
_TFHD_DEFAULT_FLAGS = 0x000020

# trun flags.
_TRUN_DATA_OFFSET = 0x000001
_TRUN_FIRST_SAMPLE_FLAGS = 0x000004
_TRUN_DURATION = 0x000100
_TRUN_SIZE = 0x000200
_TRUN_FLAGS = 0x000400
_TRUN_CTS_OFFSET = 0x000800

_VISUAL_SAMPLE_ENTRY_SIZE = 78
_AUDIO_SAMPLE_ENTRY_SIZE = 28


class MediaFormatError(Exception):
    """The bytes are not the fragmented MP4 the packager expects."""


class NoReferenceSamples(MediaFormatError):
    """A fragment without samples of the track that times the stream (audio only)."""


@dataclass(frozen=True, slots=True)
class BoxHeader:
    """A box's type, total size (0: to the end of its container) and header length."""

    type: str
    size: int
    header_size: int


@dataclass(frozen=True, slots=True)
class Box:
    """A parsed child box: its type and payload (the bytes after the header)."""

    type: str
    payload: bytes


def _unpack(fmt: str, data: bytes, offset: int) -> tuple[int, ...]:
    try:
        return struct.unpack_from(fmt, data, offset)
    except struct.error as exc:
        raise MediaFormatError(f"box truncated at byte {offset}") from exc


def _u8(data: bytes, offset: int) -> int:
    return _unpack(">B", data, offset)[0]


def _u16(data: bytes, offset: int) -> int:
    return _unpack(">H", data, offset)[0]


def _u32(data: bytes, offset: int) -> int:
    return _unpack(">I", data, offset)[0]


def _u64(data: bytes, offset: int) -> int:
    return _unpack(">Q", data, offset)[0]


def _box_type(raw: bytes) -> str:
    # Printable ASCII (and the © of iTunes metadata) only: anything else means we are not
    # looking at a box boundary, e.g. a non-MP4 stream or a corrupt size field upstream.
    if any(not (0x20 <= byte < 0x7F or byte == 0xA9) for byte in raw):
        raise MediaFormatError(f"invalid box type {raw!r}: not an MP4 stream")
    return raw.decode("latin-1")


def parse_box_header(
    data: bytes | bytearray, offset: int = 0, *, max_size: int = MAX_BOX_SIZE
) -> BoxHeader | None:
    """Read the box header at `offset`; None when more bytes are needed to know it."""
    available = len(data) - offset
    if available < 8:
        return None
    size, raw_type = struct.unpack_from(">I4s", data, offset)
    box_type = _box_type(raw_type)
    header_size = 8
    if size == 1:
        if available < 16:
            return None
        (size,) = struct.unpack_from(">Q", data, offset + 8)
        header_size = 16
    if size != 0 and size < header_size:
        raise MediaFormatError(f"box {box_type!r} has size {size}, smaller than its header")
    if size > max_size:
        raise MediaFormatError(f"box {box_type!r} has size {size}, over the {max_size} limit")
    return BoxHeader(box_type, size, header_size)


def iter_boxes(data: bytes) -> Iterator[Box]:
    """Yield the boxes that make up `data` exactly (a container's payload)."""
    offset = 0
    while offset < len(data):
        header = parse_box_header(data, offset, max_size=len(data) - offset)
        if header is None:
            raise MediaFormatError(f"box header truncated at byte {offset}")
        size = header.size or len(data) - offset
        if offset + size > len(data):
            raise MediaFormatError(f"box {header.type!r} truncated")
        yield Box(header.type, bytes(data[offset + header.header_size : offset + size]))
        offset += size


def find_box(data: bytes, *path: str) -> Box | None:
    """Return the first box reached by following the types in `path`, or None."""
    box: Box | None = None
    payload = data
    for box_type in path:
        box = next((child for child in iter_boxes(payload) if child.type == box_type), None)
        if box is None:
            return None
        payload = box.payload
    return box


def _require_box(data: bytes, *path: str) -> Box:
    box = find_box(data, *path)
    if box is None:
        raise MediaFormatError(f"missing {'/'.join(path)} box")
    return box


def full_box_header(payload: bytes) -> tuple[int, int]:
    """Return (version, flags) of a full box."""
    header = _u32(payload, 0)
    return header >> 24, header & 0xFFFFFF


def is_sync_sample(flags: int) -> bool:
    """Tell whether sample flags mark a sync sample (a keyframe)."""
    depends_on = (flags >> _DEPENDS_ON_SHIFT) & 0x3
    return not flags & _SAMPLE_IS_NON_SYNC and depends_on != _DEPENDS_ON_OTHERS


# --- init segment ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrackDefaults:
    """Per-track sample defaults from `trex`."""

    sample_duration: int = 0
    sample_flags: int = 0


@dataclass(frozen=True, slots=True)
class Track:
    """One track of the init segment."""

    track_id: int
    handler: str  # "vide", "soun", …
    timescale: int
    codec: str  # RFC 6381 codec string for CODECS, e.g. "avc1.64001f"
    width: int = 0
    height: int = 0
    sample_rate: int = 0
    channels: int = 0
    defaults: TrackDefaults = TrackDefaults()

    @property
    def is_video(self) -> bool:
        """Tell whether this is a video track."""
        return self.handler == "vide"

    @property
    def is_audio(self) -> bool:
        """Tell whether this is an audio track."""
        return self.handler == "soun"


@dataclass(frozen=True, slots=True)
class InitSegment:
    """`ftyp` + `moov` as received, with its tracks."""

    data: bytes
    tracks: tuple[Track, ...]

    @property
    def video(self) -> Track | None:
        """Return the first video track, if any."""
        return next((track for track in self.tracks if track.is_video), None)

    @property
    def audio(self) -> Track | None:
        """Return the first audio track, if any."""
        return next((track for track in self.tracks if track.is_audio), None)

    @property
    def reference(self) -> Track:
        """Return the track whose timing and keyframes decide segment boundaries."""
        return self.video or self.tracks[0]

    @property
    def codecs(self) -> str:
        """Return the CODECS attribute value: video first, then audio."""
        ordered = sorted(self.tracks, key=lambda track: (not track.is_video, track.track_id))
        return ",".join(track.codec for track in ordered if track.is_video or track.is_audio)


def parse_tkhd(payload: bytes) -> tuple[int, int, int]:
    """Return (track_id, width, height) from a `tkhd` payload; sizes are 16.16 fixed point."""
    version, _ = full_box_header(payload)
    if version == 1:
        track_id, width, height = _u32(payload, 20), _u32(payload, 88), _u32(payload, 92)
    else:
        track_id, width, height = _u32(payload, 12), _u32(payload, 76), _u32(payload, 80)
    return track_id, width >> 16, height >> 16


def parse_mdhd_timescale(payload: bytes) -> int:
    """Return the media timescale from an `mdhd` payload."""
    version, _ = full_box_header(payload)
    timescale = _u32(payload, 20 if version == 1 else 12)
    if timescale == 0:
        raise MediaFormatError("mdhd timescale is 0")
    return timescale


def parse_hdlr_type(payload: bytes) -> str:
    """Return the handler type ("vide", "soun", …) from an `hdlr` payload."""
    if len(payload) < 12:
        raise MediaFormatError("hdlr box truncated")
    return _box_type(payload[8:12])


def parse_trex(payload: bytes) -> tuple[int, TrackDefaults]:
    """Return (track_id, defaults) from a `trex` payload."""
    track_id = _u32(payload, 4)
    return track_id, TrackDefaults(
        sample_duration=_u32(payload, 12), sample_flags=_u32(payload, 20)
    )


def avc_codec_string(entry_type: str, avcc: bytes) -> str:
    """Return "avc1.PPCCLL" from an `avcC` payload (profile, constraints, level)."""
    profile, compatibility, level = _u8(avcc, 1), _u8(avcc, 2), _u8(avcc, 3)
    return f"{entry_type}.{profile:02x}{compatibility:02x}{level:02x}"


def hevc_codec_string(entry_type: str, hvcc: bytes) -> str:
    """Return "hvc1.P.C.TL.B…" from an `hvcC` payload (ISO/IEC 14496-15 Annex E)."""
    byte1 = _u8(hvcc, 1)
    space = ("", "A", "B", "C")[byte1 >> 6]
    tier = "H" if byte1 & 0x20 else "L"
    profile = byte1 & 0x1F
    compatibility = int(f"{_u32(hvcc, 2):032b}"[::-1], 2)
    constraints = bytes(_u8(hvcc, 6 + index) for index in range(6)).rstrip(b"\x00")
    level = _u8(hvcc, 12)
    parts = [entry_type, f"{space}{profile}", f"{compatibility:X}", f"{tier}{level}"]
    parts.extend(f"{byte:02X}" for byte in constraints)
    return ".".join(parts)


def _descriptor(data: bytes, offset: int) -> tuple[int, int, int]:
    """Return (tag, payload offset, payload length) of an MPEG-4 descriptor."""
    tag = _u8(data, offset)
    length = 0
    offset += 1
    for _ in range(4):
        byte = _u8(data, offset)
        offset += 1
        length = (length << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return tag, offset, length


def mp4a_codec_string(esds: bytes) -> str:
    """Return "mp4a.40.<audio object type>" from an `esds` payload."""
    tag, offset, _ = _descriptor(esds, 4)
    if tag != 0x03:
        raise MediaFormatError("esds has no ES_Descriptor")
    es_flags = _u8(esds, offset + 2)
    offset += 3
    if es_flags & 0x80:  # streamDependenceFlag
        offset += 2
    if es_flags & 0x40:  # URL_Flag
        offset += 1 + _u8(esds, offset)
    if es_flags & 0x20:  # OCRstreamFlag
        offset += 2
    tag, offset, _ = _descriptor(esds, offset)
    if tag != 0x04:
        raise MediaFormatError("esds has no DecoderConfigDescriptor")
    object_type = _u8(esds, offset)
    if object_type != 0x40:  # not MPEG-4 Audio: the object type alone names the codec
        return f"mp4a.{object_type:02x}"
    tag, offset, length = _descriptor(esds, offset + 13)
    if tag != 0x05 or length < 1:
        return "mp4a.40"
    audio_object_type = _u8(esds, offset) >> 3
    if audio_object_type == 31:  # escape: 6 more bits follow
        audio_object_type = 32 + ((_u16(esds, offset) >> 5) & 0x3F)
    return f"mp4a.40.{audio_object_type}"


def _sample_entry(stsd: bytes) -> tuple[str, bytes]:
    entry = next(iter_boxes(stsd[8:]), None) if _u32(stsd, 4) else None
    if entry is None:
        raise MediaFormatError("stsd has no sample entry")
    return entry.type, entry.payload


def _child(payload: bytes, offset: int, box_type: str) -> bytes | None:
    # Some muxers end a sample entry with a 4-byte zero terminator: stop at whatever tail
    # cannot be a box instead of refusing the whole init segment.
    try:
        for box in iter_boxes(payload[offset:]):
            if box.type == box_type:
                return box.payload
    except MediaFormatError:
        pass
    return None


def parse_sample_entry(stsd: bytes) -> tuple[str, int, int, int, int]:
    """Return (codec, width, height, sample rate, channels) from an `stsd` payload."""
    entry_type, entry = _sample_entry(stsd)
    if entry_type in {"avc1", "avc3", "hvc1", "hev1"}:
        width, height = _u16(entry, 24), _u16(entry, 26)
        config_type = "avcC" if entry_type.startswith("avc") else "hvcC"
        config = _child(entry, _VISUAL_SAMPLE_ENTRY_SIZE, config_type)
        if config is None:
            raise MediaFormatError(f"{entry_type} sample entry has no {config_type}")
        if config_type == "avcC":
            return avc_codec_string(entry_type, config), width, height, 0, 0
        return hevc_codec_string(entry_type, config), width, height, 0, 0
    if entry_type in {"mp4a", "Opus", "fLaC", "ac-3", "ec-3"}:
        channels, sample_rate = _u16(entry, 16), _u32(entry, 24) >> 16
        if entry_type == "mp4a":
            esds = _child(entry, _AUDIO_SAMPLE_ENTRY_SIZE, "esds")
            codec = mp4a_codec_string(esds) if esds is not None else "mp4a.40.2"
        else:
            codec = {"Opus": "opus", "fLaC": "flac"}.get(entry_type, entry_type)
        return codec, 0, 0, sample_rate, channels
    # Other codecs (vp09, av01…) pass through with the bare sample entry name.
    return entry_type, 0, 0, 0, 0


def parse_trak(trak: bytes) -> Track:
    """Return the track described by a `trak` payload (defaults come from `trex` later)."""
    track_id, width, height = parse_tkhd(_require_box(trak, "tkhd").payload)
    timescale = parse_mdhd_timescale(_require_box(trak, "mdia", "mdhd").payload)
    handler = parse_hdlr_type(_require_box(trak, "mdia", "hdlr").payload)
    stsd = _require_box(trak, "mdia", "minf", "stbl", "stsd").payload
    codec, entry_width, entry_height, sample_rate, channels = parse_sample_entry(stsd)
    return Track(
        track_id=track_id,
        handler=handler,
        timescale=timescale,
        codec=codec,
        width=width or entry_width,
        height=height or entry_height,
        sample_rate=sample_rate,
        channels=channels,
    )


def parse_moov(moov: bytes) -> tuple[Track, ...]:
    """Return the tracks of a fragmented `moov` payload, with their `trex` defaults."""
    boxes = list(iter_boxes(moov))
    mvex = next((box for box in boxes if box.type == "mvex"), None)
    if mvex is None:
        raise MediaFormatError("moov has no mvex: not a fragmented MP4")
    defaults = dict(
        parse_trex(box.payload) for box in iter_boxes(mvex.payload) if box.type == "trex"
    )
    tracks = [parse_trak(box.payload) for box in boxes if box.type == "trak"]
    tracks = [
        replace(track, defaults=defaults.get(track.track_id, TrackDefaults())) for track in tracks
    ]
    if not tracks:
        raise MediaFormatError("moov has no tracks")
    return tuple(tracks)


# --- fragments -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrackFragment:
    """One `traf`: where its samples start, how many, how long, and the first one's flags."""

    track_id: int
    decode_time: int
    sample_count: int
    duration: int
    first_sample_flags: int

    @property
    def starts_with_sync_sample(self) -> bool:
        """Tell whether the first sample is a keyframe."""
        return is_sync_sample(self.first_sample_flags)


@dataclass(frozen=True, slots=True)
class TfhdDefaults:
    """The per-fragment overrides a `tfhd` carries."""

    track_id: int
    sample_duration: int | None = None
    sample_flags: int | None = None


def parse_tfhd(payload: bytes) -> TfhdDefaults:
    """Return the track id and default sample duration/flags of a `tfhd` payload."""
    _, flags = full_box_header(payload)
    track_id = _u32(payload, 4)
    offset = 8
    if flags & _TFHD_BASE_DATA_OFFSET:
        offset += 8
    if flags & _TFHD_SAMPLE_DESCRIPTION_INDEX:
        offset += 4
    duration = flags_value = None
    if flags & _TFHD_DEFAULT_DURATION:
        duration = _u32(payload, offset)
        offset += 4
    if flags & _TFHD_DEFAULT_SIZE:
        offset += 4
    if flags & _TFHD_DEFAULT_FLAGS:
        flags_value = _u32(payload, offset)
    return TfhdDefaults(track_id, duration, flags_value)


def parse_tfdt(payload: bytes) -> int:
    """Return baseMediaDecodeTime from a `tfdt` payload."""
    version, _ = full_box_header(payload)
    return _u64(payload, 4) if version == 1 else _u32(payload, 4)


@dataclass(frozen=True, slots=True)
class TrackRun:
    """What the packager needs from one `trun`."""

    sample_count: int
    duration: int
    first_sample_flags: int


def parse_trun(payload: bytes, *, default_duration: int, default_flags: int) -> TrackRun:
    """Return sample count, total duration and first-sample flags of a `trun` payload."""
    _, flags = full_box_header(payload)
    sample_count = _u32(payload, 4)
    offset = 8
    if flags & _TRUN_DATA_OFFSET:
        offset += 4
    first_sample_flags: int | None = None
    if flags & _TRUN_FIRST_SAMPLE_FLAGS:
        first_sample_flags = _u32(payload, offset)
        offset += 4
    fields = [_TRUN_DURATION, _TRUN_SIZE, _TRUN_FLAGS, _TRUN_CTS_OFFSET]
    record_size = 4 * sum(1 for field in fields if flags & field)
    if len(payload) < offset + sample_count * record_size:
        raise MediaFormatError(f"trun of {sample_count} samples is truncated")
    if flags & _TRUN_DURATION:
        durations = struct.unpack_from(f">{sample_count * record_size // 4}I", payload, offset)
        duration = sum(durations[:: record_size // 4])
    else:
        duration = sample_count * default_duration
    if first_sample_flags is None:
        if flags & _TRUN_FLAGS and sample_count:
            position = offset + 4 * sum(1 for field in fields[:2] if flags & field)
            first_sample_flags = _u32(payload, position)
        else:
            first_sample_flags = default_flags
    return TrackRun(sample_count, duration, first_sample_flags)


def parse_traf(traf: bytes, tracks: dict[int, Track]) -> TrackFragment:
    """Return the timing of one `traf` payload, resolving defaults against the init segment."""
    tfhd = parse_tfhd(_require_box(traf, "tfhd").payload)
    track = tracks.get(tfhd.track_id)
    if track is None:
        raise MediaFormatError(f"fragment refers to unknown track {tfhd.track_id}")
    tfdt = find_box(traf, "tfdt")
    if tfdt is None:
        raise MediaFormatError(f"traf of track {tfhd.track_id} has no tfdt")
    default_duration = (
        tfhd.sample_duration if tfhd.sample_duration is not None else track.defaults.sample_duration
    )
    default_flags = (
        tfhd.sample_flags if tfhd.sample_flags is not None else track.defaults.sample_flags
    )
    runs = [
        parse_trun(box.payload, default_duration=default_duration, default_flags=default_flags)
        for box in iter_boxes(traf)
        if box.type == "trun"
    ]
    return TrackFragment(
        track_id=tfhd.track_id,
        decode_time=parse_tfdt(tfdt.payload),
        sample_count=sum(run.sample_count for run in runs),
        duration=sum(run.duration for run in runs),
        first_sample_flags=runs[0].first_sample_flags if runs else default_flags,
    )


@dataclass(frozen=True, slots=True)
class Fragment:
    """One CMAF fragment (prefix boxes + `moof` + `mdat`), timed on the reference track."""

    data: bytes
    sequence_number: int
    tracks: tuple[TrackFragment, ...]
    start: int  # reference track decode time, in `timescale` units
    duration: int
    timescale: int
    keyframe: bool  # the reference track's first sample is a sync sample
    sample_count: int  # reference track samples (video frames)

    @property
    def start_seconds(self) -> float:
        """Return the start time in seconds."""
        return self.start / self.timescale

    @property
    def duration_seconds(self) -> float:
        """Return the duration in seconds."""
        return self.duration / self.timescale


def parse_moof(moof: bytes, init: InitSegment, data: bytes) -> Fragment:
    """Return the fragment whose `moof` payload is given; `data` is all its bytes."""
    sequence_number = _u32(_require_box(moof, "mfhd").payload, 4)
    tracks = {track.track_id: track for track in init.tracks}
    track_fragments = tuple(
        parse_traf(box.payload, tracks) for box in iter_boxes(moof) if box.type == "traf"
    )
    reference = init.reference
    timing = next((tf for tf in track_fragments if tf.track_id == reference.track_id), None)
    if timing is None:
        raise NoReferenceSamples(f"fragment has no samples of track {reference.track_id}")
    return Fragment(
        data=data,
        sequence_number=sequence_number,
        tracks=track_fragments,
        start=timing.decode_time,
        duration=timing.duration,
        timescale=reference.timescale,
        keyframe=timing.starts_with_sync_sample,
        sample_count=timing.sample_count,
    )


# --- the stream ------------------------------------------------------------------------------


class FragmentedMP4Parser:
    """Split a fragmented MP4 byte stream into init segments and fragments as bytes arrive."""

    def __init__(self, *, max_box_size: int = MAX_BOX_SIZE) -> None:
        self._max_box_size = max_box_size
        self._buffer = bytearray()
        self._init: InitSegment | None = None
        self._init_parts: list[bytes] = []
        self._prefix: list[bytes] = []
        self._moof: tuple[bytes, int] | None = None  # the box and its header size
        # Fragments without video (ffmpeg's -frag_duration can close one on audio alone while
        # the video encoder lags): their bytes ride at the front of the next fragment.
        self._carried: list[bytes] = []
        self._started = False
        self._error: MediaFormatError | None = None

    @property
    def init(self) -> InitSegment | None:
        """Return the latest init segment, once seen."""
        return self._init

    def feed(self, data: bytes) -> list[InitSegment | Fragment]:
        """Take more bytes; return every init segment and fragment they complete.

        Bad bytes raise `MediaFormatError`; if items completed before them in the same call,
        those are returned first and the error is raised by the next call (or `close()`).
        """
        if self._error is not None:
            raise self._error
        self._buffer += data
        items: list[InitSegment | Fragment] = []
        try:
            while (item := self._next_item()) is not None:
                items.append(item)
        except MediaFormatError as error:
            if not items:
                raise
            self._error = error
        return items

    def _next_item(self) -> InitSegment | Fragment | None:
        """Consume boxes until one completes an item; None when more bytes are needed."""
        while True:
            header = parse_box_header(self._buffer, max_size=self._max_box_size)
            if header is None:
                return None
            if header.size == 0:
                raise MediaFormatError(f"box {header.type!r} has no size: not a live stream")
            if len(self._buffer) < header.size:
                return None
            box = bytes(self._buffer[: header.size])
            del self._buffer[: header.size]
            item = self._take(header, box)
            if item is not None:
                return item

    def close(self) -> None:
        """Signal the end of the stream; raise if it stopped inside a box or fragment."""
        if self._error is not None:
            raise self._error
        if self._buffer:
            raise MediaFormatError(f"stream ended inside a box ({len(self._buffer)} bytes left)")
        if self._moof is not None or self._init_parts:
            raise MediaFormatError("stream ended inside a fragment or init segment")

    def _take(self, header: BoxHeader, box: bytes) -> InitSegment | Fragment | None:
        if not self._started:
            if header.type in _FRAGMENT_PREFIX_BOXES or header.type in {"moof", "mdat"}:
                raise MediaFormatError("fragment before the init segment")
            if header.type not in _STREAM_START_BOXES:
                raise MediaFormatError(f"stream starts with {header.type!r}: not a fragmented MP4")
            self._started = True
        if header.type in {"ftyp", "moov"}:
            return self._take_init_box(header, box)
        if header.type in _FRAGMENT_PREFIX_BOXES or header.type in {"moof", "mdat"}:
            return self._take_fragment_box(header, box)
        # free/skip/mfra and unknown boxes carry nothing the packager needs.
        return None

    def _take_init_box(self, header: BoxHeader, box: bytes) -> InitSegment | None:
        if self._moof is not None or self._prefix:
            raise MediaFormatError(f"{header.type!r} inside a fragment")
        if header.type == "ftyp":
            self._init_parts = [box]
            return None
        tracks = parse_moov(box[header.header_size :])
        self._init = InitSegment(b"".join([*self._init_parts, box]), tracks)
        self._init_parts = []
        self._carried = []  # media of the previous init cannot precede this one's
        return self._init

    def _take_fragment_box(self, header: BoxHeader, box: bytes) -> Fragment | None:
        if self._init is None:
            raise MediaFormatError("fragment before the init segment")
        if header.type == "mdat":
            if self._moof is None:
                raise MediaFormatError("mdat without a moof")
            moof, moof_header_size = self._moof
            data = b"".join([*self._prefix, moof, box])
            self._moof = None
            self._prefix = []
            try:
                fragment = parse_moof(moof[moof_header_size:], self._init, data)
            except NoReferenceSamples:
                self._carry(data)
                return None
            if self._carried:
                fragment = replace(fragment, data=b"".join([*self._carried, data]))
                self._carried = []
            return fragment
        if self._moof is not None:
            raise MediaFormatError(f"{header.type!r} after a moof, before its mdat")
        if header.type == "moof":
            self._moof = (box, header.header_size)
        else:
            self._prefix.append(box)
        return None

    def _carry(self, data: bytes) -> None:
        self._carried.append(data)
        if sum(map(len, self._carried)) > self._max_box_size:
            raise MediaFormatError("fragments without video for too long")


async def read_fragments(
    stream: asyncio.StreamReader, *, max_box_size: int = MAX_BOX_SIZE
) -> AsyncIterator[InitSegment | Fragment]:
    """Yield init segments and fragments from a stream until EOF."""
    parser = FragmentedMP4Parser(max_box_size=max_box_size)
    while chunk := await stream.read(READ_CHUNK_SIZE):
        for item in parser.feed(chunk):
            yield item
    parser.close()


@asynccontextmanager
async def pipe_stream(fd: int) -> AsyncIterator[asyncio.StreamReader]:
    """Read the read end of a pipe (e.g. one ffmpeg writes through `pass_fds`) as a stream."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe = os.fdopen(fd, "rb", buffering=0)
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
    except BaseException:
        pipe.close()
        raise
    try:
        yield reader
    finally:
        transport.close()
