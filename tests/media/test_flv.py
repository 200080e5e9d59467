"""FLV tags from RTMP messages, byte by byte."""

from __future__ import annotations

import pytest

from stagecast.media.rtmp import amf0
from stagecast.media.rtmp.chunks import MessageType, RtmpMessage
from stagecast.media.rtmp.flv import (
    FlvTag,
    TagType,
    flv_header,
    parse_metadata,
    split_aggregate,
    tag_from_message,
)


def test_flv_header_with_previous_tag_size_0() -> None:
    assert flv_header() == bytes.fromhex("464c5601 05 00000009 00000000")
    assert flv_header(audio=False)[4] == 0x01
    assert flv_header(video=False)[4] == 0x04


def test_tag_bytes_with_extended_timestamp_and_previous_tag_size() -> None:
    tag = FlvTag(TagType.VIDEO, 0x01020304, b"\x17\x01abc")
    assert tag.to_bytes() == bytes.fromhex("09 000005 020304 01 000000") + b"\x17\x01abc" + (
        bytes.fromhex("00000010")
    )


@pytest.mark.parametrize(
    ("tag", "codec", "keyframe", "sequence_header"),
    [
        (FlvTag(TagType.VIDEO, 0, b"\x17\x00\x00\x00\x00\x01"), "h264", True, True),
        (FlvTag(TagType.VIDEO, 0, b"\x17\x01\x00\x00\x00"), "h264", True, False),
        (FlvTag(TagType.VIDEO, 0, b"\x27\x01\x00\x00\x00"), "h264", False, False),
        (FlvTag(TagType.VIDEO, 0, b"\x1c\x00\x00\x00\x00"), "hevc", True, True),
        (FlvTag(TagType.VIDEO, 0, b"\x90hvc1\x01"), "hevc", True, True),
        (FlvTag(TagType.VIDEO, 0, b"\x91av01\x0a"), "av1", True, False),
        (FlvTag(TagType.VIDEO, 0, b"\xa3vp09\x00"), "vp9", False, False),
        (FlvTag(TagType.VIDEO, 0, b""), None, False, False),
    ],
)
def test_video_tag_properties(
    tag: FlvTag, codec: str | None, keyframe: bool, sequence_header: bool
) -> None:
    assert tag.video_codec == codec
    assert tag.audio_codec is None
    assert tag.is_keyframe is keyframe
    assert tag.is_sequence_header is sequence_header


@pytest.mark.parametrize(
    ("payload", "codec", "sequence_header"),
    [
        (b"\xaf\x00\x12\x10", "aac", True),
        (b"\xaf\x01\x21\x00", "aac", False),
        (b"\x2f\xff\xfb", "mp3", False),
        (b"\x90Opus\x01", "opus", True),
        (b"\x91Opus\x00", "opus", False),
    ],
)
def test_audio_tag_properties(payload: bytes, codec: str, sequence_header: bool) -> None:
    tag = FlvTag(TagType.AUDIO, 0, payload)
    assert tag.audio_codec == codec
    assert tag.video_codec is None
    assert tag.is_keyframe is False
    assert tag.is_sequence_header is sequence_header


def test_tag_from_message_keeps_the_body_and_clock() -> None:
    message = RtmpMessage(MessageType.AUDIO, 1, 1234, b"\xaf\x01\x00", 4)
    assert tag_from_message(message) == FlvTag(TagType.AUDIO, 1234, b"\xaf\x01\x00")
    assert tag_from_message(RtmpMessage(MessageType.VIDEO, 1, 0, b"", 6)) is None
    assert tag_from_message(RtmpMessage(MessageType.COMMAND_AMF0, 1, 0, b"\x05", 3)) is None


def test_metadata_from_set_data_frame_drops_the_prefix() -> None:
    properties = amf0.EcmaArray(width=320.0, height=240.0, encoder="Lavf")
    payload = amf0.encode("@setDataFrame", "onMetaData", properties)
    parsed = parse_metadata(payload)
    assert parsed is not None
    body, metadata = parsed
    assert body == amf0.encode("onMetaData", properties)
    assert metadata == {"width": 320.0, "height": 240.0, "encoder": "Lavf"}


def test_metadata_without_prefix_and_other_data_messages() -> None:
    payload = amf0.encode("onMetaData", {"width": 1.0})
    assert parse_metadata(payload) == (payload, {"width": 1.0})
    assert parse_metadata(amf0.encode("onMetaData")) == (amf0.encode("onMetaData"), {})
    assert parse_metadata(amf0.encode("@setDataFrame", "onTextData", {"text": "hi"})) is None
    with pytest.raises(amf0.Amf0Error):
        parse_metadata(b"\x02\x00\x10")


def test_aggregate_messages_split_into_tags_on_the_message_clock() -> None:
    first = FlvTag(TagType.VIDEO, 5000, b"\x17\x01\x00")
    second = FlvTag(TagType.AUDIO, 5020, b"\xaf\x01\x00")
    message = RtmpMessage(MessageType.AGGREGATE, 1, 100, first.to_bytes() + second.to_bytes(), 6)
    assert split_aggregate(message) == [
        FlvTag(TagType.VIDEO, 100, b"\x17\x01\x00"),
        FlvTag(TagType.AUDIO, 120, b"\xaf\x01\x00"),
    ]
    truncated = RtmpMessage(MessageType.AGGREGATE, 1, 0, first.to_bytes()[:-6], 6)
    with pytest.raises(ValueError, match="truncated"):
        split_aggregate(truncated)
