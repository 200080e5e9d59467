"""AMF0 encoding and decoding, byte by byte."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from stagecast.media.rtmp import amf0
from stagecast.media.rtmp.amf0 import UNDEFINED, Amf0Error, AmfValue, EcmaArray


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (1.0, bytes.fromhex("00 3ff0000000000000")),
        (0, bytes.fromhex("00 0000000000000000")),
        (-2.5, bytes.fromhex("00 c004000000000000")),
        (True, bytes.fromhex("01 01")),
        (False, bytes.fromhex("01 00")),
        ("connect", bytes.fromhex("02 0007") + b"connect"),
        ("", bytes.fromhex("02 0000")),
        ("é", bytes.fromhex("02 0002 c3a9")),
        (None, bytes.fromhex("05")),
        (UNDEFINED, bytes.fromhex("06")),
        ({"app": "live"}, bytes.fromhex("03 0003") + b"app" + bytes.fromhex("02 0004") + b"live"
         + bytes.fromhex("000009")),
        ({}, bytes.fromhex("03 000009")),
        (EcmaArray(a=1), bytes.fromhex("08 00000001 0001 61 00 3ff0000000000000 000009")),
        ([1, "x"], bytes.fromhex("0a 00000002 00 3ff0000000000000 02 0001 78")),
        (datetime(2024, 1, 1, tzinfo=UTC), b"\x0b" + struct.pack(">dh", 1704067200000.0, 0)),
    ],
)  # fmt: skip
def test_known_vectors_encode_and_decode(value: AmfValue, encoded: bytes) -> None:
    assert amf0.encode(value) == encoded
    assert amf0.decode(encoded) == [value]


def test_long_strings_switch_to_the_long_string_marker() -> None:
    text = "x" * 70_000
    encoded = amf0.encode(text)
    assert encoded[:5] == bytes.fromhex("0c 00011170")
    assert amf0.decode(encoded) == [text]


def test_a_connect_command_from_ffmpeg_decodes() -> None:
    payload = (
        bytes.fromhex("02 0007")
        + b"connect"
        + bytes.fromhex("00 3ff0000000000000 03")
        + bytes.fromhex("0003")
        + b"app"
        + bytes.fromhex("02 0004")
        + b"live"
        + bytes.fromhex("0004")
        + b"type"
        + bytes.fromhex("02 000a")
        + b"nonprivate"
        + bytes.fromhex("0005")
        + b"tcUrl"
        + bytes.fromhex("02 001a")
        + b"rtmp://127.0.0.1:1935/live"
        + bytes.fromhex("000009")
    )
    assert amf0.decode(payload) == [
        "connect",
        1.0,
        {"app": "live", "type": "nonprivate", "tcUrl": "rtmp://127.0.0.1:1935/live"},
    ]


def test_nested_values_round_trip() -> None:
    values: list[AmfValue] = [
        "onStatus",
        0,
        None,
        {
            "level": "status",
            "details": {"nested": [1.5, True, None, UNDEFINED, {"deep": "yes"}]},
            "meta": EcmaArray(width=1280.0, height=720.0),
        },
    ]
    decoded = amf0.decode(amf0.encode(*values))
    assert decoded == values
    assert isinstance(decoded[3], dict)
    assert isinstance(decoded[3]["meta"], EcmaArray)


def test_ecma_array_without_end_marker_is_accepted() -> None:
    encoded = bytes.fromhex("08 00000001 0001 61 01 01")
    assert amf0.decode(encoded) == [{"a": True}]


def test_typed_object_decodes_to_its_properties() -> None:
    encoded = bytes.fromhex("10 0003") + b"Foo" + bytes.fromhex("0001 61 05 000009")
    assert amf0.decode(encoded) == [{"a": None}]


def test_decode_value_returns_the_next_offset() -> None:
    encoded = amf0.encode("@setDataFrame", "onMetaData")
    value, offset = amf0.decode_value(encoded)
    assert (value, offset) == ("@setDataFrame", 16)
    assert amf0.decode_value(encoded, offset) == ("onMetaData", len(encoded))


@pytest.mark.parametrize(
    "encoded",
    [
        bytes.fromhex("00 3ff0"),  # number cut short
        bytes.fromhex("02 0010 6162"),  # string shorter than its length
        bytes.fromhex("03 0001 61"),  # object property without value
        bytes.fromhex("03 0001 61 05"),  # object without end marker
        bytes.fromhex("0a 00000003 05"),  # strict array with missing items
        bytes.fromhex("02 0002 ffff"),  # invalid UTF-8
        bytes.fromhex("07 0001"),  # reference: not sent by publishers
        bytes.fromhex("11"),  # AMF3 switch
        bytes.fromhex("0b 7ff0000000000000 0000"),  # infinite date
        bytes.fromhex("0a 00000001") * 40 + b"\x05",  # nesting bomb
    ],
)
def test_bad_bytes_raise_amf0_error(encoded: bytes) -> None:
    with pytest.raises(Amf0Error):
        amf0.decode(encoded)


def test_values_that_cannot_be_encoded_raise() -> None:
    with pytest.raises(Amf0Error):
        amf0.encode({"": 1})
    with pytest.raises(Amf0Error):
        amf0.encode(datetime(2024, 1, 1))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(Amf0Error):
        amf0.encode(b"bytes")  # type: ignore[arg-type]
