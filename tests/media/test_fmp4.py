"""Fragmented MP4 parsing, on hand-built boxes."""

from __future__ import annotations

import asyncio
import struct

import pytest

from stagecast.media.fmp4 import (
    BoxHeader,
    Fragment,
    FragmentedMP4Parser,
    InitSegment,
    MediaFormatError,
    avc_codec_string,
    hevc_codec_string,
    is_sync_sample,
    iter_boxes,
    mp4a_codec_string,
    parse_box_header,
    parse_tfdt,
    parse_tfhd,
    parse_tkhd,
    parse_trun,
    read_fragments,
)

KEYFRAME_FLAGS = 0x0200_0000  # sample_depends_on = 2 (an I-frame)
NON_KEYFRAME_FLAGS = 0x0101_0000  # depends on others, not a sync sample
VIDEO_TIMESCALE = 15360
FRAME = 512  # one frame at 30 fps in VIDEO_TIMESCALE
AUDIO_TIMESCALE = 48000
AVCC = bytes([1, 0x64, 0x00, 0x1F, 0xFF, 0xE0, 0x00])  # High profile, level 3.1, no SPS/PPS
# The esds ffmpeg writes for AAC-LC 48 kHz mono (copied from a real init segment).
FFMPEG_ESDS = bytes.fromhex(
    "000000000380808025000200048080801740150000000000fa000000fa000580808005118856e500068080800102"
)


# --- builders --------------------------------------------------------------------------------


def box(box_type: str, *payloads: bytes) -> bytes:
    """Return a box with a 32-bit size."""
    payload = b"".join(payloads)
    return struct.pack(">I4s", 8 + len(payload), box_type.encode("latin-1")) + payload


def full_box(box_type: str, version: int, flags: int, *payloads: bytes) -> bytes:
    """Return a full box (version and flags first)."""
    return box(box_type, struct.pack(">I", version << 24 | flags), *payloads)


def tkhd(track_id: int, width: int = 0, height: int = 0, *, version: int = 0) -> bytes:
    """Return a `tkhd` with the size in 16.16 fixed point."""
    if version == 1:
        times = struct.pack(">QQIIQ", 0, 0, track_id, 0, 0)
    else:
        times = struct.pack(">IIIII", 0, 0, track_id, 0, 0)
    middle = bytes(8 + 2 + 2 + 2 + 2 + 36)
    return full_box(
        "tkhd", version, 3, times, middle, struct.pack(">II", width << 16, height << 16)
    )


def mdia(handler: str, timescale: int, sample_entry: bytes) -> bytes:
    """Return an `mdia` with `mdhd`, `hdlr` and a one-entry `stsd`."""
    mdhd = full_box("mdhd", 0, 0, struct.pack(">IIII", 0, 0, timescale, 0), bytes(4))
    hdlr = full_box("hdlr", 0, 0, bytes(4), handler.encode(), bytes(12), b"Handler\x00")
    stsd = full_box("stsd", 0, 0, struct.pack(">I", 1), sample_entry)
    return box("mdia", mdhd, hdlr, box("minf", box("stbl", stsd)))


def avc1(width: int, height: int, avcc: bytes = AVCC, entry_type: str = "avc1") -> bytes:
    """Return a visual sample entry with its codec configuration box."""
    config = box("hvcC" if entry_type.startswith("hv") else "avcC", avcc)
    fields = bytes(6) + struct.pack(">H", 1) + bytes(16) + struct.pack(">HH", width, height)
    rest = bytes(78 - len(fields))
    return box(entry_type, fields, rest, config)


def mp4a(sample_rate: int = 48000, channels: int = 2, esds: bytes = FFMPEG_ESDS) -> bytes:
    """Return an audio sample entry with its `esds`."""
    fields = bytes(6) + struct.pack(">H", 1) + bytes(8)
    fields += struct.pack(">HHHHI", channels, 16, 0, 0, sample_rate << 16)
    return box("mp4a", fields, box("esds", esds))


def trex(track_id: int, duration: int = 0, flags: int = 0) -> bytes:
    """Return a `trex` with default sample duration and flags."""
    return full_box("trex", 0, 0, struct.pack(">IIIII", track_id, 1, duration, 0, flags))


def init_segment(
    *,
    width: int = 320,
    height: int = 240,
    audio: bool = True,
    video_defaults: tuple[int, int] = (0, 0),
    video_entry: bytes | None = None,
) -> bytes:
    """Return ftyp + moov for an H.264 track (id 1) and optionally an AAC track (id 2)."""
    video_entry = video_entry or avc1(width, height)
    traks = [box("trak", tkhd(1, width, height), mdia("vide", VIDEO_TIMESCALE, video_entry))]
    trexes = [trex(1, *video_defaults)]
    if audio:
        traks.append(box("trak", tkhd(2), mdia("soun", AUDIO_TIMESCALE, mp4a())))
        trexes.append(trex(2, 1024, 0))
    ftyp = box("ftyp", b"iso6", struct.pack(">I", 512), b"iso6cmfc")
    return ftyp + box("moov", full_box("mvhd", 0, 0, bytes(96)), *traks, box("mvex", *trexes))


def trun(
    sample_count: int,
    *,
    durations: list[int] | None = None,
    first_sample_flags: int | None = None,
    sample_flags: list[int] | None = None,
    sizes: bool = True,
) -> bytes:
    """Return a `trun`; per-sample fields appear only when given."""
    flags = 0x000001
    head = struct.pack(">Ii", sample_count, 0)
    if first_sample_flags is not None:
        flags |= 0x000004
        head += struct.pack(">I", first_sample_flags)
    if durations is not None:
        flags |= 0x000100
    if sizes:
        flags |= 0x000200
    if sample_flags is not None:
        flags |= 0x000400
    records = b""
    for index in range(sample_count):
        if durations is not None:
            records += struct.pack(">I", durations[index])
        if sizes:
            records += struct.pack(">I", 100)
        if sample_flags is not None:
            records += struct.pack(">I", sample_flags[index])
    return full_box("trun", 1, flags, head, records)


def traf(
    track_id: int, decode_time: int, run: bytes, *, default_duration: int | None = None
) -> bytes:
    """Return a `traf` (default-base-is-moof, non-sync default flags) with tfdt v1."""
    flags = 0x020000 | 0x000020
    fields = struct.pack(">I", track_id)
    if default_duration is not None:
        flags |= 0x000008
        fields += struct.pack(">I", default_duration)
    fields += struct.pack(">I", NON_KEYFRAME_FLAGS)
    tfdt = full_box("tfdt", 1, 0, struct.pack(">Q", decode_time))
    return box("traf", full_box("tfhd", 0, flags, fields), tfdt, run)


def fragment(
    sequence: int,
    decode_time: int,
    *,
    frames: int = 30,
    keyframe: bool = True,
    audio: bool = True,
    prefix: bytes = b"",
) -> bytes:
    """Return moof + mdat: `frames` video frames (and matching audio) from `decode_time`."""
    video_run = trun(
        frames,
        durations=[FRAME] * frames,
        first_sample_flags=KEYFRAME_FLAGS if keyframe else NON_KEYFRAME_FLAGS,
    )
    trafs = [traf(1, decode_time, video_run)]
    if audio:
        audio_start = decode_time * AUDIO_TIMESCALE // VIDEO_TIMESCALE
        audio_run = trun(frames * 3 // 2, first_sample_flags=KEYFRAME_FLAGS)
        trafs.append(traf(2, audio_start, audio_run, default_duration=1024))
    moof = box("moof", full_box("mfhd", 0, 0, struct.pack(">I", sequence)), *trafs)
    return prefix + moof + box("mdat", bytes(64) + struct.pack(">I", sequence))


def stream_of(*fragments: bytes, audio: bool = True) -> bytes:
    """Return an init segment followed by the fragments."""
    return init_segment(audio=audio) + b"".join(fragments)


def parse_all(data: bytes, chunk: int | None = None) -> list[InitSegment | Fragment]:
    """Feed `data` to a parser (in chunks of `chunk` bytes) and close it."""
    parser = FragmentedMP4Parser()
    step = chunk or len(data) or 1
    items: list[InitSegment | Fragment] = []
    for offset in range(0, len(data), step):
        items += parser.feed(data[offset : offset + step])
    parser.close()
    return items


# --- box headers -----------------------------------------------------------------------------


def test_box_header_with_32_bit_size() -> None:
    assert parse_box_header(b"\x00\x00\x00\x10moof" + bytes(8)) == BoxHeader("moof", 16, 8)


def test_box_header_with_64_bit_largesize() -> None:
    data = struct.pack(">I4sQ", 1, b"mdat", 1 << 20)
    assert parse_box_header(data) == BoxHeader("mdat", 1 << 20, 16)


def test_box_header_at_an_offset() -> None:
    assert parse_box_header(b"xx" + box("free", b"abc"), 2) == BoxHeader("free", 11, 8)


def test_box_header_needs_more_bytes() -> None:
    assert parse_box_header(b"\x00\x00\x00\x10moo") is None
    assert parse_box_header(struct.pack(">I4s", 1, b"mdat") + bytes(7)) is None


def test_box_header_size_zero_means_to_the_end() -> None:
    assert parse_box_header(struct.pack(">I4s", 0, b"mdat")) == BoxHeader("mdat", 0, 8)


@pytest.mark.parametrize("size", [1, 7])
def test_box_smaller_than_its_header_is_refused(size: int) -> None:
    data = struct.pack(">I4s", size, b"moof") + bytes(8)
    if size == 1:  # a largesize below 16 is just as wrong
        data = struct.pack(">I4sQ", 1, b"moof", 15)
    with pytest.raises(MediaFormatError, match="smaller than its header"):
        parse_box_header(data)


def test_absurd_box_size_is_refused() -> None:
    with pytest.raises(MediaFormatError, match="over the 1024 limit"):
        parse_box_header(struct.pack(">I4s", 4096, b"mdat"), max_size=1024)
    with pytest.raises(MediaFormatError, match="limit"):
        parse_box_header(struct.pack(">I4sQ", 1, b"mdat", 1 << 60))


def test_box_type_must_be_printable() -> None:
    with pytest.raises(MediaFormatError, match="not an MP4 stream"):
        parse_box_header(struct.pack(">I", 16) + b"\x1a\x45\xdf\xa3" + bytes(8))


def test_iter_boxes_splits_a_payload() -> None:
    boxes = list(iter_boxes(box("mfhd", b"1234") + box("traf", b"")))
    assert [(b.type, b.payload) for b in boxes] == [("mfhd", b"1234"), ("traf", b"")]


def test_iter_boxes_refuses_a_truncated_child() -> None:
    with pytest.raises(MediaFormatError):
        list(iter_boxes(box("mfhd", b"1234")[:-1]))
    with pytest.raises(MediaFormatError, match="truncated"):
        list(iter_boxes(b"\x00\x00\x00"))


# --- small box parsers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "sync"),
    [
        (0x0200_0000, True),  # depends on nothing: an I-frame
        (0x0000_0000, True),  # unknown dependency, not marked non-sync
        (0x0101_0000, False),  # P/B frame as ffmpeg marks it
        (0x0001_0000, False),  # non-sync bit alone
        (0x0100_0000, False),  # depends on others
    ],
)
def test_sync_sample_flags(flags: int, sync: bool) -> None:
    assert is_sync_sample(flags) is sync


@pytest.mark.parametrize("version", [0, 1])
def test_tkhd_track_id_and_size(version: int) -> None:
    payload = tkhd(7, 1280, 720, version=version)[8:]
    assert parse_tkhd(payload) == (7, 1280, 720)


def test_tfdt_both_versions() -> None:
    assert parse_tfdt(full_box("tfdt", 0, 0, struct.pack(">I", 1234))[8:]) == 1234
    assert parse_tfdt(full_box("tfdt", 1, 0, struct.pack(">Q", 1 << 40))[8:]) == 1 << 40


def test_tfhd_skips_optional_fields_to_the_defaults() -> None:
    flags = 0x01 | 0x02 | 0x08 | 0x10 | 0x20
    fields = struct.pack(">IQIIII", 3, 999, 1, 512, 4000, NON_KEYFRAME_FLAGS)
    defaults = parse_tfhd(full_box("tfhd", 0, flags, fields)[8:])
    assert (defaults.track_id, defaults.sample_duration, defaults.sample_flags) == (
        3,
        512,
        NON_KEYFRAME_FLAGS,
    )


def test_tfhd_without_defaults() -> None:
    defaults = parse_tfhd(full_box("tfhd", 0, 0x020000, struct.pack(">I", 1))[8:])
    assert (defaults.sample_duration, defaults.sample_flags) == (None, None)


def test_trun_sums_per_sample_durations() -> None:
    run = parse_trun(
        trun(3, durations=[500, 512, 524], first_sample_flags=KEYFRAME_FLAGS)[8:],
        default_duration=1,
        default_flags=NON_KEYFRAME_FLAGS,
    )
    assert (run.sample_count, run.duration, run.first_sample_flags) == (3, 1536, KEYFRAME_FLAGS)


def test_trun_falls_back_to_default_duration_and_flags() -> None:
    run = parse_trun(trun(4)[8:], default_duration=1024, default_flags=NON_KEYFRAME_FLAGS)
    assert (run.duration, run.first_sample_flags) == (4096, NON_KEYFRAME_FLAGS)


def test_trun_first_sample_flags_from_per_sample_flags() -> None:
    payload = trun(2, durations=[1, 1], sample_flags=[KEYFRAME_FLAGS, NON_KEYFRAME_FLAGS])[8:]
    run = parse_trun(payload, default_duration=0, default_flags=NON_KEYFRAME_FLAGS)
    assert run.first_sample_flags == KEYFRAME_FLAGS


def test_trun_with_composition_offsets() -> None:
    records = b"".join(struct.pack(">IIi", 512, 100, offset) for offset in (1024, -512))
    payload = full_box("trun", 1, 0x000100 | 0x000200 | 0x000800, struct.pack(">I", 2), records)
    run = parse_trun(payload[8:], default_duration=0, default_flags=KEYFRAME_FLAGS)
    assert (run.sample_count, run.duration) == (2, 1024)


def test_trun_claiming_more_samples_than_it_holds_is_refused() -> None:
    payload = trun(2, durations=[1, 1])[8:]
    payload = payload[:4] + struct.pack(">I", 1_000_000) + payload[8:]
    with pytest.raises(MediaFormatError, match="truncated"):
        parse_trun(payload, default_duration=0, default_flags=0)


def test_avc_codec_string() -> None:
    assert avc_codec_string("avc1", AVCC) == "avc1.64001f"
    assert avc_codec_string("avc3", bytes([1, 0x42, 0xE0, 0x1E])) == "avc3.42e01e"


def test_hevc_codec_string() -> None:
    # Main profile, main tier, level 3.1, progressive-source constraint flag.
    hvcc = bytes([1, 0x01, 0x60, 0, 0, 0, 0xB0, 0, 0, 0, 0, 0, 93])
    assert hevc_codec_string("hvc1", hvcc) == "hvc1.1.6.L93.B0"
    # Main 10, high tier, level 5.1.
    hvcc = bytes([1, 0x22, 0x20, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 153])
    assert hevc_codec_string("hev1", hvcc) == "hev1.2.4.H153.90"


def _esds(object_type: int, audio_specific_config: bytes) -> bytes:
    decoder_specific = bytes([0x05, len(audio_specific_config)]) + audio_specific_config
    decoder_config = bytes([0x04, 13 + len(decoder_specific), object_type, 0x15]) + bytes(11)
    decoder_config += decoder_specific
    es = bytes([0x03, 3 + len(decoder_config), 0, 1, 0]) + decoder_config
    return bytes(4) + es


def test_mp4a_codec_string_from_ffmpeg_esds() -> None:
    assert mp4a_codec_string(FFMPEG_ESDS) == "mp4a.40.2"


@pytest.mark.parametrize(
    ("config", "codec"),
    [
        (bytes([0x11, 0x90]), "mp4a.40.2"),  # AAC-LC
        (bytes([0x2B, 0x92, 0x08, 0x00]), "mp4a.40.5"),  # HE-AAC (SBR)
        (bytes([0xF8, 0x40, 0x00]), "mp4a.40.34"),  # escape: 31 then 6 bits (2) -> 34
    ],
)
def test_mp4a_codec_string_audio_object_types(config: bytes, codec: str) -> None:
    assert mp4a_codec_string(_esds(0x40, config)) == codec


def test_mp4a_codec_string_for_mp3() -> None:
    assert mp4a_codec_string(_esds(0x6B, b"")) == "mp4a.6b"


def test_esds_without_es_descriptor_is_refused() -> None:
    with pytest.raises(MediaFormatError, match="ES_Descriptor"):
        mp4a_codec_string(bytes(4) + bytes([0x04, 0]))


# --- the stream ------------------------------------------------------------------------------


def test_parses_init_segment_tracks_and_codecs() -> None:
    data = init_segment(width=1280, height=720)
    (init,) = parse_all(data)
    assert isinstance(init, InitSegment)
    assert init.data == data
    assert init.codecs == "avc1.64001f,mp4a.40.2"
    assert init.video is not None
    assert init.audio is not None
    assert (init.video.width, init.video.height, init.video.timescale) == (1280, 720, 15360)
    assert (init.audio.sample_rate, init.audio.channels, init.audio.timescale) == (48000, 2, 48000)
    assert init.reference is init.video


def test_resolution_falls_back_to_the_sample_entry() -> None:
    data = init_segment(width=640, height=360)
    # Zero the tkhd size (some muxers leave it empty).
    marker = struct.pack(">II", 640 << 16, 360 << 16)
    data = data.replace(marker, bytes(8), 1)
    (init,) = parse_all(data)
    assert isinstance(init, InitSegment)
    assert init.video is not None
    assert (init.video.width, init.video.height) == (640, 360)


def test_sample_entry_with_a_zero_terminator() -> None:
    entry = avc1(320, 240)
    entry = struct.pack(">I", len(entry) + 4) + entry[4:] + bytes(4)
    (init,) = parse_all(init_segment(audio=False, video_entry=entry))
    assert isinstance(init, InitSegment)
    assert init.codecs == "avc1.64001f"


def test_sample_entry_without_codec_configuration_is_refused() -> None:
    fields = bytes(6) + struct.pack(">H", 1) + bytes(16) + struct.pack(">HH", 320, 240)
    entry = box("avc1", fields, bytes(78 - len(fields)))
    with pytest.raises(MediaFormatError, match="no avcC"):
        parse_all(init_segment(audio=False, video_entry=entry))


def test_hevc_track_codec() -> None:
    hvcc = bytes([1, 0x01, 0x60, 0, 0, 0, 0xB0, 0, 0, 0, 0, 0, 93])
    data = init_segment(audio=False, video_entry=avc1(1920, 1080, hvcc, entry_type="hvc1"))
    (init,) = parse_all(data)
    assert isinstance(init, InitSegment)
    assert init.codecs == "hvc1.1.6.L93.B0"


def test_parses_fragments_with_timing_and_keyframes() -> None:
    data = stream_of(fragment(1, 0), fragment(2, 30 * FRAME, keyframe=False, frames=15))
    init, first, second = parse_all(data)
    assert isinstance(init, InitSegment)
    assert isinstance(first, Fragment)
    assert isinstance(second, Fragment)
    assert (first.sequence_number, first.start, first.duration, first.keyframe) == (
        1,
        0,
        30 * FRAME,
        True,
    )
    assert first.duration_seconds == 1.0
    assert first.sample_count == 30
    assert (second.start_seconds, second.duration_seconds, second.keyframe) == (1.0, 0.5, False)
    assert [track.track_id for track in first.tracks] == [1, 2]
    assert first.tracks[1].duration == 45 * 1024  # audio: tfhd default duration
    assert data == init.data + first.data + second.data


def test_any_chunking_gives_the_same_result() -> None:
    data = stream_of(fragment(1, 0), fragment(2, 30 * FRAME))
    whole = parse_all(data)
    assert parse_all(data, chunk=1) == whole
    assert parse_all(data, chunk=7) == whole


def test_trex_defaults_apply_when_tfhd_has_none() -> None:
    # Video track: trex says 1000 ticks per sample and non-sync; a trun without durations or
    # first-sample flags must take both from there.
    init = init_segment(audio=False, video_defaults=(1000, NON_KEYFRAME_FLAGS))
    tfhd = full_box("tfhd", 0, 0x020000, struct.pack(">I", 1))
    tfdt = full_box("tfdt", 0, 0, struct.pack(">I", 0))
    moof = box(
        "moof", full_box("mfhd", 0, 0, struct.pack(">I", 1)), box("traf", tfhd, tfdt, trun(5))
    )
    _, parsed = parse_all(init + moof + box("mdat", b"x"))
    assert isinstance(parsed, Fragment)
    assert (parsed.duration, parsed.keyframe) == (5000, False)


def test_fragment_prefix_boxes_belong_to_the_fragment() -> None:
    prefix = box("styp", b"msdh") + full_box("prft", 1, 0, bytes(16))
    data = stream_of(fragment(1, 0, prefix=prefix))
    _, parsed = parse_all(data)
    assert isinstance(parsed, Fragment)
    assert parsed.data.startswith(prefix)
    assert parsed.data[len(prefix) + 4 : len(prefix) + 8] == b"moof"


def test_free_and_trailer_boxes_are_ignored() -> None:
    data = box("free", b"pad") + stream_of(fragment(1, 0)) + box("mfra", bytes(16))
    kinds = [type(item).__name__ for item in parse_all(data)]
    assert kinds == ["InitSegment", "Fragment"]


def test_a_new_init_segment_mid_stream_is_reported() -> None:
    data = stream_of(fragment(1, 0)) + init_segment(width=640, height=480) + fragment(1, 0)
    items = parse_all(data)
    assert [type(item).__name__ for item in items] == [
        "InitSegment",
        "Fragment",
        "InitSegment",
        "Fragment",
    ]
    second_init = items[2]
    assert isinstance(second_init, InitSegment)
    assert second_init.video is not None
    assert second_init.video.width == 640


def audio_only_fragment(sequence: int, audio_start: int, samples: int = 15) -> bytes:
    run = trun(samples, first_sample_flags=KEYFRAME_FLAGS)
    audio = traf(2, audio_start, run, default_duration=1024)
    moof = box("moof", full_box("mfhd", 0, 0, struct.pack(">I", sequence)), audio)
    return moof + box("mdat", bytes(32) + struct.pack(">I", sequence))


def test_fragments_without_video_ride_on_the_next_one() -> None:
    # ffmpeg's -frag_duration can close a fragment on audio alone while video lags behind.
    orphan = audio_only_fragment(2, 30 * FRAME * AUDIO_TIMESCALE // VIDEO_TIMESCALE)
    later = fragment(3, 30 * FRAME, keyframe=False)
    items = parse_all(stream_of(fragment(1, 0), orphan, later))
    fragments = [item for item in items if isinstance(item, Fragment)]
    assert [f.sequence_number for f in fragments] == [1, 3]
    # Its bytes go first in the next fragment: nothing is lost, the timing stays the video's.
    assert fragments[1].data == orphan + later
    assert fragments[1].start == 30 * FRAME
    assert fragments[1].sample_count == 30
    # A new init segment drops what the old one left; video never coming is refused.
    restarted = parse_all(stream_of(orphan) + init_segment() + fragment(1, 0))
    assert [len(f.data) for f in restarted if isinstance(f, Fragment)] == [len(fragment(1, 0))]
    parser = FragmentedMP4Parser(max_box_size=4096)
    parser.feed(init_segment())
    audio = b"".join(audio_only_fragment(n, n * 1024 * 15) for n in range(100))
    with pytest.raises(MediaFormatError, match="without video"):
        parser.feed(audio)


def test_audio_only_stream_times_on_the_audio_track() -> None:
    ftyp = box("ftyp", b"iso6", bytes(4))
    trak = box("trak", tkhd(2), mdia("soun", AUDIO_TIMESCALE, mp4a()))
    init = ftyp + box("moov", trak, box("mvex", trex(2, 1024, 0)))
    run = trun(47, first_sample_flags=None, sizes=True)
    moof = box("moof", full_box("mfhd", 0, 0, struct.pack(">I", 1)), traf(2, 0, run))
    _, parsed = parse_all(init + moof + box("mdat", b""))
    assert isinstance(parsed, Fragment)
    assert (parsed.timescale, parsed.duration) == (48000, 47 * 1024)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (fragment(1, 0), "fragment before the init segment"),
        (box("styp", b"msdh") + fragment(1, 0), "fragment before the init segment"),
        (box("mdat", b"x"), "fragment before the init segment"),
        (b"FLV\x01\x05\x00\x00\x00\x09" + bytes(64), "not an MP4 stream|limit"),
        (bytes.fromhex("1a45dfa3a3428681") + bytes(64), "not an MP4 stream|limit"),
        (b"hello, this is not video at all!", "limit|not an MP4"),
        (box("abcd", b"") + init_segment(), "not a fragmented MP4"),
        (struct.pack(">I4s", 4, b"ftyp"), "smaller than its header"),
        (struct.pack(">I4s", 0, b"ftyp"), "no size"),
    ],
)
def test_bad_streams_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(MediaFormatError, match=message):
        parse_all(data)


def test_absurd_box_size_mid_stream_is_refused_without_buffering() -> None:
    parser = FragmentedMP4Parser(max_box_size=1 << 20)
    parser.feed(init_segment())
    with pytest.raises(MediaFormatError, match="limit"):
        parser.feed(struct.pack(">I4s", 0x7FFF_FFFF, b"mdat"))


def test_truncated_stream_is_reported_at_close() -> None:
    data = stream_of(fragment(1, 0))
    parser = FragmentedMP4Parser()
    items = parser.feed(data[:-10])
    assert [type(item).__name__ for item in items] == ["InitSegment"]
    with pytest.raises(MediaFormatError, match="inside a box"):
        parser.close()


def test_items_before_bad_bytes_are_returned_then_the_error_is_raised() -> None:
    parser = FragmentedMP4Parser()
    items = parser.feed(stream_of(fragment(1, 0)) + struct.pack(">I4s", 3, b"junk"))
    assert [type(item).__name__ for item in items] == ["InitSegment", "Fragment"]
    with pytest.raises(MediaFormatError, match="smaller than its header"):
        parser.feed(b"")
    with pytest.raises(MediaFormatError, match="smaller than its header"):
        parser.close()


def test_stream_ending_between_moof_and_mdat_is_reported() -> None:
    moof_only = fragment(1, 0)
    moof_only = moof_only[: moof_only.index(b"mdat") - 4]
    parser = FragmentedMP4Parser()
    parser.feed(init_segment() + moof_only)
    with pytest.raises(MediaFormatError, match="inside a fragment"):
        parser.close()


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (box("mdat", b"x"), "mdat without a moof"),
        (box("moof", b"") + box("moof", b""), "before its mdat"),
        (box("moof", b"") + box("styp", b""), "before its mdat"),
        (box("moof", full_box("mfhd", 0, 0, bytes(4))) + box("ftyp", b""), "inside a fragment"),
    ],
)
def test_out_of_order_boxes_are_refused(tail: bytes, message: str) -> None:
    with pytest.raises(MediaFormatError, match=message):
        parse_all(init_segment() + tail)


def test_non_fragmented_mp4_is_refused() -> None:
    ftyp = box("ftyp", b"isom", bytes(4))
    trak = box("trak", tkhd(1, 320, 240), mdia("vide", 1000, avc1(320, 240)))
    with pytest.raises(MediaFormatError, match="not a fragmented MP4"):
        parse_all(ftyp + box("moov", trak) + box("mdat", b""))


def test_fragment_of_an_unknown_track_is_refused() -> None:
    run = trun(1, durations=[1])
    moof = box("moof", full_box("mfhd", 0, 0, bytes(4)), traf(9, 0, run))
    with pytest.raises(MediaFormatError, match="unknown track 9"):
        parse_all(init_segment() + moof + box("mdat", b""))


def test_traf_without_tfdt_is_refused() -> None:
    tfhd = full_box("tfhd", 0, 0x020000, struct.pack(">I", 1))
    moof = box("moof", full_box("mfhd", 0, 0, bytes(4)), box("traf", tfhd, trun(1)))
    with pytest.raises(MediaFormatError, match="no tfdt"):
        parse_all(init_segment() + moof + box("mdat", b""))


def test_truncated_moov_child_is_refused() -> None:
    data = init_segment()
    moov_at = data.index(b"moov") - 4
    moov = data[moov_at:]
    # Claim the tkhd is longer than the trak that holds it.
    broken = moov.replace(b"\x00\x00\x00\x5ctkhd", b"\x00\x00\x01\x5ctkhd", 1)
    assert broken != moov
    with pytest.raises(MediaFormatError):
        parse_all(data[:moov_at] + broken)


async def test_read_fragments_from_a_stream_reader() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(stream_of(fragment(1, 0), fragment(2, 30 * FRAME)))
    reader.feed_eof()
    items = [item async for item in read_fragments(reader)]
    assert [type(item).__name__ for item in items] == ["InitSegment", "Fragment", "Fragment"]


async def test_read_fragments_reports_a_truncated_stream() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(stream_of(fragment(1, 0))[:-1])
    reader.feed_eof()
    with pytest.raises(MediaFormatError):
        [item async for item in read_fragments(reader)]
