"""AMF0, the value encoding of RTMP commands and metadata.

Python values map to AMF0 markers: float/int -> number, bool -> boolean, str -> string (long
string past 65535 bytes), None -> null, `UNDEFINED` -> undefined, dict -> object, `EcmaArray`
-> ECMA array, list -> strict array, aware datetime -> date. Typed objects decode to dicts.
"""

from __future__ import annotations

import enum
import math
import struct
from datetime import UTC, datetime
from typing import Final, TypeAlias

NUMBER = 0x00
BOOLEAN = 0x01
STRING = 0x02
OBJECT = 0x03
NULL = 0x05
UNDEFINED_MARKER = 0x06
ECMA_ARRAY = 0x08
OBJECT_END = 0x09
STRICT_ARRAY = 0x0A
DATE = 0x0B
LONG_STRING = 0x0C
UNSUPPORTED = 0x0D
XML_DOCUMENT = 0x0F
TYPED_OBJECT = 0x10

# Deeper nesting than any real client sends; the limit keeps hostile input off the C stack.
MAX_DEPTH = 32
_END_OF_OBJECT = b"\x00\x00\x09"


class Undefined(enum.Enum):
    """The AMF0 undefined value, distinct from null (None)."""

    UNDEFINED = "undefined"


UNDEFINED: Final = Undefined.UNDEFINED


class EcmaArray(dict[str, "AmfValue"]):
    """An associative array (`onMetaData` sends one); a dict that encodes as ECMA array."""


AmfValue: TypeAlias = (
    "float | int | bool | str | Undefined | datetime | dict[str, AmfValue] | list[AmfValue] | None"
)


class Amf0Error(ValueError):
    """The bytes are not valid AMF0, or a value cannot be encoded."""


def encode(*values: AmfValue) -> bytes:
    """Encode values one after another, as a command message carries them."""
    out = bytearray()
    for value in values:
        _encode_value(out, value, 0)
    return bytes(out)


def _encode_utf8(out: bytearray, text: str) -> None:
    raw = text.encode()
    if len(raw) > 0xFFFF:
        raise Amf0Error("property name longer than 65535 bytes")
    out += struct.pack(">H", len(raw)) + raw


def _encode_properties(out: bytearray, items: dict[str, AmfValue], depth: int) -> None:
    for key, item in items.items():
        if not key:
            raise Amf0Error("an empty property name would end the object")
        _encode_utf8(out, key)
        _encode_value(out, item, depth + 1)
    out += _END_OF_OBJECT


def _encode_value(out: bytearray, value: AmfValue, depth: int) -> None:  # noqa: PLR0912
    if depth > MAX_DEPTH:
        raise Amf0Error("value nested too deeply")
    if value is None:
        out.append(NULL)
    elif value is UNDEFINED:
        out.append(UNDEFINED_MARKER)
    elif isinstance(value, bool):
        out += bytes((BOOLEAN, int(value)))
    elif isinstance(value, int | float):
        out.append(NUMBER)
        out += struct.pack(">d", float(value))
    elif isinstance(value, str):
        raw = value.encode()
        if len(raw) <= 0xFFFF:
            out.append(STRING)
            out += struct.pack(">H", len(raw))
        else:
            out.append(LONG_STRING)
            out += struct.pack(">I", len(raw))
        out += raw
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            raise Amf0Error("dates must be timezone-aware")
        out.append(DATE)
        out += struct.pack(">dh", value.timestamp() * 1000.0, 0)
    elif isinstance(value, EcmaArray):
        out.append(ECMA_ARRAY)
        out += struct.pack(">I", len(value))
        _encode_properties(out, value, depth)
    elif isinstance(value, dict):
        out.append(OBJECT)
        _encode_properties(out, value, depth)
    elif isinstance(value, list):
        out.append(STRICT_ARRAY)
        out += struct.pack(">I", len(value))
        for item in value:
            _encode_value(out, item, depth + 1)
    else:
        raise Amf0Error(f"cannot encode {type(value).__name__} as AMF0")


def decode(data: bytes) -> list[AmfValue]:
    """Decode every value in `data` (a command's name, transaction id, objects, arguments)."""
    values: list[AmfValue] = []
    offset = 0
    while offset < len(data):
        value, offset = decode_value(data, offset)
        values.append(value)
    return values


def decode_value(data: bytes, offset: int = 0) -> tuple[AmfValue, int]:
    """Decode one value at `offset`; return it and the offset just past it."""
    return _decode_value(data, offset, 0)


def _take(data: bytes, offset: int, size: int) -> bytes:
    end = offset + size
    if end > len(data):
        raise Amf0Error(f"truncated AMF0: need {size} bytes at offset {offset}")
    return data[offset:end]


def _decode_utf8(data: bytes, offset: int, length_size: int) -> tuple[str, int]:
    fmt = ">H" if length_size == 2 else ">I"
    (length,) = struct.unpack(fmt, _take(data, offset, length_size))
    offset += length_size
    raw = _take(data, offset, length)
    try:
        return raw.decode(), offset + length
    except UnicodeDecodeError as error:
        raise Amf0Error(f"invalid UTF-8 in string at offset {offset}") from error


def _decode_properties(
    data: bytes, offset: int, depth: int, target: dict[str, AmfValue], count: int | None = None
) -> int:
    while True:
        if data[offset : offset + 3] == _END_OF_OBJECT:
            return offset + 3
        # Some encoders end an ECMA array after its announced entries without the end marker.
        if count is not None and offset == len(data) and len(target) >= count:
            return offset
        key, offset = _decode_utf8(data, offset, 2)
        target[key], offset = _decode_value(data, offset, depth + 1)


def _decode_value(data: bytes, offset: int, depth: int) -> tuple[AmfValue, int]:  # noqa: PLR0912
    if depth > MAX_DEPTH:
        raise Amf0Error("AMF0 value nested too deeply")
    marker = _take(data, offset, 1)[0]
    offset += 1
    if marker == NUMBER:
        (number,) = struct.unpack(">d", _take(data, offset, 8))
        return number, offset + 8
    if marker == BOOLEAN:
        return _take(data, offset, 1)[0] != 0, offset + 1
    if marker == STRING:
        return _decode_utf8(data, offset, 2)
    if marker in (LONG_STRING, XML_DOCUMENT):
        return _decode_utf8(data, offset, 4)
    if marker in (NULL, UNSUPPORTED):
        return None, offset
    if marker == UNDEFINED_MARKER:
        return UNDEFINED, offset
    if marker in (OBJECT, TYPED_OBJECT):
        if marker == TYPED_OBJECT:
            _class_name, offset = _decode_utf8(data, offset, 2)
        obj: dict[str, AmfValue] = {}
        return obj, _decode_properties(data, offset, depth, obj)
    if marker == ECMA_ARRAY:
        (count,) = struct.unpack(">I", _take(data, offset, 4))
        array = EcmaArray()
        return array, _decode_properties(data, offset + 4, depth, array, count)
    if marker == STRICT_ARRAY:
        (count,) = struct.unpack(">I", _take(data, offset, 4))
        offset += 4
        items: list[AmfValue] = []
        for _ in range(count):
            item, offset = _decode_value(data, offset, depth + 1)
            items.append(item)
        return items, offset
    if marker == DATE:
        millis, _timezone = struct.unpack(">dh", _take(data, offset, 10))
        if not math.isfinite(millis):
            raise Amf0Error("date is not a finite number")
        try:
            return datetime.fromtimestamp(millis / 1000.0, tz=UTC), offset + 10
        except (OverflowError, OSError, ValueError) as error:
            raise Amf0Error("date out of range") from error
    raise Amf0Error(f"unsupported AMF0 marker 0x{marker:02x} at offset {offset - 1}")
