"""FLV tags from RTMP media messages, so ffmpeg can read a publish as `-f flv -i pipe:0`.

An RTMP audio, video or data message body is exactly an FLV tag body; the tag adds an 11-byte
header in front and the previous-tag-size after. Enhanced RTMP (HEVC, AV1, VP9 and Opus by
FourCC, as OBS 30 and ffmpeg 7 send them) is recognised for keyframes and sequence headers.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from stagecast.media.rtmp import amf0
from stagecast.media.rtmp.chunks import MessageType, RtmpMessage

TAG_HEADER_SIZE = 11
_SET_DATA_FRAME = "@setDataFrame"
_ON_METADATA = "onMetaData"

_LEGACY_VIDEO_CODECS = {2: "flv1", 4: "vp6", 5: "vp6a", 7: "h264", 12: "hevc"}
_LEGACY_AUDIO_CODECS = {
    1: "adpcm",
    2: "mp3",
    4: "nellymoser",
    6: "nellymoser",
    10: "aac",
    11: "speex",
}
_VIDEO_FOURCCS = {b"avc1": "h264", b"hvc1": "hevc", b"av01": "av1", b"vp09": "vp9"}
_AUDIO_FOURCCS = {b"mp4a": "aac", b"Opus": "opus", b"fLaC": "flac", b".mp3": "mp3"}
_AUDIO_EX_HEADER = 9
_KEYFRAME = 1
_SEQUENCE_START = 0


class TagType(enum.IntEnum):
    """FLV tag types; the same numbers as the RTMP message types they come from."""

    AUDIO = 8
    VIDEO = 9
    SCRIPT = 18


@dataclass(frozen=True, slots=True)
class FlvTag:
    """One FLV tag: its type, timestamp in milliseconds and body."""

    tag_type: TagType
    timestamp: int
    payload: bytes

    @property
    def _enhanced_video(self) -> bool:
        return self.tag_type == TagType.VIDEO and bool(self.payload[:1]) and self.payload[0] >= 0x80

    @property
    def video_codec(self) -> str | None:
        """The video codec name (h264, hevc, av1, vp9…), or None for other tags."""
        if self.tag_type != TagType.VIDEO or not self.payload:
            return None
        if self._enhanced_video:
            fourcc = self.payload[1:5]
            return _VIDEO_FOURCCS.get(fourcc, fourcc.decode("latin-1"))
        return _LEGACY_VIDEO_CODECS.get(self.payload[0] & 0x0F, "unknown")

    @property
    def audio_codec(self) -> str | None:
        """The audio codec name (aac, mp3, opus…), or None for other tags."""
        if self.tag_type != TagType.AUDIO or not self.payload:
            return None
        sound_format = self.payload[0] >> 4
        if sound_format == _AUDIO_EX_HEADER:
            fourcc = self.payload[1:5]
            return _AUDIO_FOURCCS.get(fourcc, fourcc.decode("latin-1"))
        return _LEGACY_AUDIO_CODECS.get(sound_format, "unknown")

    @property
    def is_keyframe(self) -> bool:
        """Whether this is a video keyframe (sequence headers count, as FLV marks them)."""
        if self.tag_type != TagType.VIDEO or not self.payload:
            return False
        return (self.payload[0] >> 4) & 0x07 == _KEYFRAME

    @property
    def is_sequence_header(self) -> bool:
        """Whether this carries decoder configuration (AVC/HEVC record, AAC AudioSpecificConfig)."""
        if len(self.payload) < 2:
            return False
        if self.tag_type == TagType.VIDEO:
            if self._enhanced_video:
                return self.payload[0] & 0x0F == _SEQUENCE_START
            return self.payload[0] & 0x0F in (7, 12) and self.payload[1] == _SEQUENCE_START
        if self.tag_type == TagType.AUDIO:
            if self.payload[0] >> 4 == _AUDIO_EX_HEADER:
                return self.payload[0] & 0x0F == _SEQUENCE_START
            return self.payload[0] >> 4 == 10 and self.payload[1] == _SEQUENCE_START
        return False

    def to_bytes(self) -> bytes:
        """Encode the tag followed by its previous-tag-size field."""
        size = len(self.payload)
        if size > 0xFFFFFF:
            raise ValueError("FLV tag body longer than 16 MiB")
        timestamp = self.timestamp & 0xFFFFFFFF
        header = (
            bytes((self.tag_type,))
            + size.to_bytes(3, "big")
            + (timestamp & 0xFFFFFF).to_bytes(3, "big")
            + bytes((timestamp >> 24,))
            + b"\x00\x00\x00"
        )
        return header + self.payload + struct.pack(">I", TAG_HEADER_SIZE + size)


def flv_header(*, audio: bool = True, video: bool = True) -> bytes:
    """The FLV file header followed by PreviousTagSize0: what comes before the first tag."""
    flags = (0x04 if audio else 0) | (0x01 if video else 0)
    return b"FLV\x01" + bytes((flags,)) + struct.pack(">II", 9, 0)


def parse_metadata(payload: bytes) -> tuple[bytes, dict[str, amf0.AmfValue]] | None:
    """Split an `[@setDataFrame,] onMetaData, {…}` data message into the FLV script body and
    the metadata properties; None for any other data message."""
    values = amf0.decode(payload)
    body = payload
    if values[:1] == [_SET_DATA_FRAME]:
        _, offset = amf0.decode_value(payload)
        body = payload[offset:]
        values = values[1:]
    if values[:1] != [_ON_METADATA]:
        return None
    properties = values[1] if len(values) > 1 and isinstance(values[1], dict) else {}
    return body, dict(properties)


def tag_from_message(message: RtmpMessage) -> FlvTag | None:
    """Turn an audio or video message into an FLV tag; None for empty or other messages."""
    if message.type_id not in (MessageType.AUDIO, MessageType.VIDEO) or not message.payload:
        return None
    return FlvTag(TagType(message.type_id), message.timestamp, message.payload)


def split_aggregate(message: RtmpMessage) -> list[FlvTag]:
    """Split an aggregate message (FLV tags back to back) into tags on the message's clock."""
    payload = message.payload
    tags: list[FlvTag] = []
    offset = 0
    base: int | None = None
    while offset + TAG_HEADER_SIZE <= len(payload):
        tag_type = payload[offset]
        size = int.from_bytes(payload[offset + 1 : offset + 4], "big")
        timestamp = int.from_bytes(payload[offset + 4 : offset + 7], "big") | (
            payload[offset + 7] << 24
        )
        body_start = offset + TAG_HEADER_SIZE
        body_end = body_start + size
        if body_end + 4 > len(payload):
            raise ValueError("aggregate message truncated")
        base = timestamp if base is None else base
        if tag_type in (TagType.AUDIO, TagType.VIDEO) and size:
            relative = (message.timestamp + timestamp - base) & 0xFFFFFFFF
            tags.append(FlvTag(TagType(tag_type), relative, payload[body_start:body_end]))
        offset = body_end + 4
    return tags
