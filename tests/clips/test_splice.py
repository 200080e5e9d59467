"""The splice's pure parts: where a range is cut, H.264 parameter sets, the avcC record and
the fast-start rewrite, byte by byte."""

from __future__ import annotations

import struct

import pytest

from stagecast.clips import splice
from stagecast.clips.ranges import Segment
from stagecast.clips.splice import AvcConfig, SpliceImpossible

FRAME = 1 / 30
SEGMENTS = [Segment(f"seg_{n}.m4s", 1.0, "init.mp4", float(n)) for n in range(8)]


def test_a_range_mid_gop_at_both_ends_has_two_edges_and_the_whole_segments_between() -> None:
    plan = splice.plan_splice(SEGMENTS, start=1.5, end=5.5, frame=FRAME)
    assert plan.head is not None
    assert plan.tail is not None
    assert plan.head.segments == (SEGMENTS[1],)
    assert (plan.head.skip, plan.head.frames) == (15, 15)
    assert [s.uri for s in plan.middle] == ["seg_2.m4s", "seg_3.m4s", "seg_4.m4s"]
    assert plan.tail.segments == (SEGMENTS[5],)
    assert (plan.tail.skip, plan.tail.frames) == (0, 15)
    assert (plan.video_start, plan.video_end) == pytest.approx((1.5, 5.5))


def test_a_range_on_keyframes_copies_everything() -> None:
    plan = splice.plan_splice(SEGMENTS, start=2.0, end=6.0, frame=FRAME)
    assert plan.head is None
    assert plan.tail is None
    assert [s.uri for s in plan.middle] == [f"seg_{n}.m4s" for n in range(2, 6)]
    # Times rounded in the playlist (a millisecond off) change nothing.
    rounded = [Segment(s.uri, s.duration, s.map_uri, s.start + 0.0004) for s in SEGMENTS]
    again = splice.plan_splice(rounded, start=2.0, end=6.0, frame=FRAME)
    assert again.head is None
    assert again.tail is None
    assert len(again.middle) == 4


def test_edges_snap_to_the_nearest_frames() -> None:
    # Neither is a frame time: 1.52 s is nearer the frame of 1.5333 s than that of 1.5 s, and
    # 5.48 s nearer the frame boundary of 5.4667 s than 5.5 s.
    plan = splice.plan_splice(SEGMENTS, start=1.52, end=5.48, frame=FRAME)
    assert plan.video_start == pytest.approx(1 + 16 * FRAME)
    assert plan.video_end == pytest.approx(5 + 14 * FRAME)
    nearer = splice.plan_splice(SEGMENTS, start=1.51, end=5.49, frame=FRAME)
    assert (nearer.video_start, nearer.video_end) == pytest.approx((1.5, 5.5))


def test_a_range_without_a_whole_segment_cannot_be_spliced() -> None:
    with pytest.raises(SpliceImpossible):
        splice.plan_splice(SEGMENTS, start=2.2, end=2.8, frame=FRAME)
    # Across one boundary: two edges, nothing to copy, still a splice.
    plan = splice.plan_splice(SEGMENTS, start=2.5, end=3.5, frame=FRAME)
    assert plan.head is not None
    assert plan.tail is not None
    assert plan.middle == ()


def _ue(value: int) -> str:
    bits = bin(value + 1)[2:]
    return "0" * (len(bits) - 1) + bits


def _nal(header: int, prefix: bytes, bits: str) -> bytes:
    bits += "1"  # rbsp stop bit
    bits += "0" * (-len(bits) % 8)
    return bytes([header]) + prefix + int(bits, 2).to_bytes(len(bits) // 8, "big")


def test_parameter_set_ids_are_read_from_exp_golomb_codes() -> None:
    sps = _nal(0x67, bytes([100, 0, 31]), _ue(3) + _ue(0))
    assert splice.sps_id(sps) == 3
    pps = _nal(0x68, b"", _ue(7) + _ue(3) + "1")
    assert splice.pps_ids(pps) == (7, 3)
    # An emulation prevention byte inside the payload is skipped.
    assert splice.sps_id(bytes([0x67, 66, 0, 0, 0x03, 0x01, 0x80])) == splice.sps_id(
        bytes([0x67, 66, 0, 0, 0x01, 0x80])
    )


def _config(ids: list[int], *, profile: int = 100, level: int = 31) -> AvcConfig:
    return AvcConfig(
        profile=profile,
        compatibility=0,
        level=level,
        length_size=4,
        sps=tuple(_nal(0x67, bytes([profile, 0, level]), _ue(i) + "1") for i in ids),
        pps=tuple(_nal(0x68, b"", _ue(i) + _ue(i) + "1") for i in ids),
        extension=b"\xfd\xf8\xf8\x00" if profile >= 100 else b"",
    )


def test_avcc_round_trips_and_merges_the_edges_after_the_source() -> None:
    source = _config([0])
    assert splice.parse_avcc(splice.build_avcc(source)) == source
    assert splice.free_parameter_set_ids(source, 2) == [1, 2]
    merged = splice.merge_avcc(source, [_config([1]), _config([2], level=30)])
    assert [splice.sps_id(nal) for nal in merged.sps] == [0, 1, 2]
    assert [splice.pps_ids(nal)[0] for nal in merged.pps] == [0, 1, 2]
    record = splice.build_avcc(merged)
    assert record[5] == 0xE0 | 3
    assert splice.parse_avcc(record) == merged
    # The same parameter sets twice are kept once.
    assert len(splice.merge_avcc(source, [source]).sps) == 1


@pytest.mark.parametrize(
    ("edge", "why"),
    [
        (_config([0], level=30), "used twice"),
        (_config([1], profile=77), "profile"),
        (_config([1], level=40), "level"),
    ],
)
def test_edges_that_cannot_share_the_sample_entry_are_refused(edge: AvcConfig, why: str) -> None:
    source = _config([0])
    with pytest.raises(SpliceImpossible, match=why):
        splice.merge_avcc(source, [edge])


def _box(kind: str, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind.encode()) + payload


def _file(avcc: bytes, offsets: list[int]) -> bytes:
    avc1 = _box("avc1", bytes(78) + _box("avcC", avcc) + _box("pasp", bytes(8)))
    stsd = _box("stsd", bytes(4) + struct.pack(">I", 1) + avc1)
    stco = _box("stco", bytes(4) + struct.pack(f">I{len(offsets)}I", len(offsets), *offsets))
    hdlr = _box("hdlr", bytes(8) + b"vide" + bytes(12))
    trak = _box("trak", _box("mdia", hdlr + _box("minf", _box("stbl", stsd + stco))))
    ftyp = _box("ftyp", b"isom" + bytes(4))
    mdat = _box("mdat", b"A" * 10 + b"B" * 10)
    return ftyp + mdat + _box("moov", trak)


def test_the_avcc_is_replaced_and_the_moov_moved_ahead_with_its_offsets() -> None:
    old = splice.build_avcc(_config([0]))
    ftyp_size = 16
    data = _file(old, [ftyp_size + 8, ftyp_size + 18])  # the A run and the B run
    new = splice.build_avcc(splice.merge_avcc(_config([0]), [_config([1])]))
    out = splice.with_avcc_and_fast_start(data, new)
    assert [kind for kind, _, _ in splice.top_level_boxes(out)] == ["ftyp", "moov", "mdat"]
    assert splice.avcc_of_file(out) == new
    # Every chunk offset still points at the same bytes.
    stco = out.index(b"stco")
    first, second = struct.unpack_from(">II", out, stco + 12)
    assert out[first : first + 10] == b"A" * 10
    assert out[second : second + 10] == b"B" * 10
    assert len(out) == len(data) + len(new) - len(old)
