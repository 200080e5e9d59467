"""Dialects: the shapes the seeds' clients expect our events in, one per socket and room.

Every room event is published once, as DESIGN.md's envelope `{type, payload, timestamp}`
under its name. A socket that joined a room in another dialect gets the event translated
instead (never both): seed 000's older names, seed 002's flat `viewer_joined` /
`tip_received`, seed 004's flat `viewer-joined`, `stream-segments-updated`, `stream-ended`.
Events a dialect has no form for reach its sockets as the envelope. The room fan-out
(realtime/fanout.py) translates once per dialect and room, not once per socket.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stagecast.errors import AppError

Translated = tuple[str, Any] | None


class DialectName(enum.StrEnum):
    ENVELOPE = "envelope"  # ours, the default
    SEED000 = "seed000"  # seed 000's `join-stream {streamId}` clients
    SEED002 = "seed002"  # seed 002's clients: chosen in the handshake
    SEED004 = "seed004"  # seed 004's viewers (`join-stream {streamKey}`) and broadcasters


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one socket wants one room's events; equal dialects share one encoded frame."""

    name: DialectName = DialectName.ENVELOPE
    # Seed 004 events name the stream as the socket named it (stream id, channel id or
    # slug for viewers; the broadcaster's own key only ever goes back to the broadcaster).
    stream_key: str | None = None
    broadcaster: bool = False

    def translate(self, event: str, message: dict[str, Any]) -> Translated:
        """The event name and data this socket gets for an envelope, or None for nothing."""
        return _TRANSLATORS[self.name](self, event, message)


ENVELOPE = Dialect()
SEED000 = Dialect(DialectName.SEED000)

SEED000_NAMES = {
    "chat:message": "new-message",
    "viewers:joined": "user-joined",
    "viewers:left": "user-left",
}


def _envelope(_dialect: Dialect, event: str, message: dict[str, Any]) -> Translated:
    return event, message


def _seed000(_dialect: Dialect, event: str, message: dict[str, Any]) -> Translated:
    return SEED000_NAMES.get(event, event), message


def _seed002(_dialect: Dialect, event: str, message: dict[str, Any]) -> Translated:
    payload = message["payload"]
    if event == "viewers:joined":
        flat = {
            "type": "viewer_joined",
            "stream_id": payload.get("stream_id"),
            "viewer": {"user_id": payload["user_id"], "display_name": payload["display_name"]},
            "timestamp": message["timestamp"],
        }
        return "viewer_joined", flat
    if event == "tip:received":
        flat = {
            "type": "tip_received",
            "stream_id": payload.get("stream_id"),
            "tip": {
                "id": payload["id"],
                # The sender's display name, as the seed's example; None on a private tip.
                "from_user": payload.get("from_display_name", payload.get("from_username")),
                "tokens": payload["tokens"],
                "message": payload.get("message"),
            },
            "timestamp": message["timestamp"],
        }
        return "tip_received", flat
    return event, message


def _seed004(dialect: Dialect, event: str, message: dict[str, Any]) -> Translated:
    payload = message["payload"]
    key = dialect.stream_key
    if event == "viewers:updated":
        count = payload["viewer_count"]
        name = "viewer-left" if count < payload.get("previous_count", 0) else "viewer-joined"
        return name, {"streamKey": key, "viewerCount": count}
    if event == "stream:segments":
        return "stream-segments-updated", {
            "streamKey": key,
            "segmentCount": payload["segment_count"],
        }
    if event == "stream:ended":
        if dialect.broadcaster:
            return None  # its ingest tells the broadcaster itself, with the reason
        return "stream-ended", {"streamKey": key, "reason": payload.get("reason") or "ended"}
    return event, message


_TRANSLATORS: dict[DialectName, Callable[[Dialect, str, dict[str, Any]], Translated]] = {
    DialectName.ENVELOPE: _envelope,
    DialectName.SEED000: _seed000,
    DialectName.SEED002: _seed002,
    DialectName.SEED004: _seed004,
}


# --- seed 004's error events -----------------------------------------------------------------

SEED004_CODES = {
    "STREAM_NOT_FOUND": "STREAM_NOT_FOUND",
    "CHANNEL_NOT_FOUND": "STREAM_NOT_FOUND",
    "NOT_BROADCASTING": "STREAM_NOT_FOUND",
    "STREAM_KEY_REJECTED": "UNAUTHORIZED",
    "STREAM_ALREADY_PUBLISHING": "STREAM_ALREADY_EXISTS",
    "MEDIA_REJECTED": "MEDIA_ERROR",
    "RATE_LIMIT_EXCEEDED": "RATE_LIMIT_EXCEEDED",  # the seed names no code for it
}


def seed004_code(error: AppError, *, invalid: str) -> str:
    """Seed 004's error code for one of ours (`invalid`: what a malformed payload means)."""
    if error.code in SEED004_CODES:
        return SEED004_CODES[error.code]
    if error.status >= 500:
        return "FFMPEG_ERROR"  # the seed's only server-side failure
    if error.status in {401, 403}:
        return "UNAUTHORIZED"
    if error.status == 404:
        return "STREAM_NOT_FOUND"
    if error.status == 409:
        return "STREAM_ALREADY_EXISTS"
    return invalid


def seed004_stream_key(data: Any) -> str | None:
    """The `streamKey` a seed 004 payload named, when it is one (echoed in its events)."""
    key = data.get("streamKey") if isinstance(data, dict) else None
    return key if isinstance(key, str) and len(key) <= 256 else None


def stream_error(error: AppError, *, stream_key: str | None, invalid: str) -> dict[str, Any]:
    """Seed 004's `stream-error {error, streamKey, code}`, with our problem beside it."""
    return {
        "error": error.detail,
        "streamKey": stream_key,
        "code": seed004_code(error, invalid=invalid),
        "problem": error.to_problem(),
    }
