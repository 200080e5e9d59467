"""What the streams and stream-key API takes and returns."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from stagecast.accounts.schemas import Input, Output
from stagecast.channels.schemas import CategorySlug, Description, Language
from stagecast.streams.models import StreamStatus

TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,24}$")
MAX_TAGS = 10


def normalize_tag(value: str) -> str:
    """Tags are lower case, letters, digits and dashes (spaces become dashes)."""
    tag = re.sub(r"\s+", "-", value.strip().lower())
    if not TAG_PATTERN.fullmatch(tag):
        raise ValueError("tags are 1-25 letters, digits or dashes")
    return tag


def _tags(values: list[str]) -> list[str]:
    tags = list(dict.fromkeys(normalize_tag(v) for v in values))
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return tags


Title = Annotated[str, StringConstraints(min_length=1, max_length=140)]
Tags = Annotated[list[str], Field(max_length=MAX_TAGS * 2), AfterValidator(_tags)]


class StreamCreate(Input):
    title: Title
    description: Description | None = None
    category: CategorySlug | None = None
    tags: Tags = Field(default_factory=list)
    language: Language | None = None
    is_mature: bool | None = None
    scheduled_for: datetime | None = None


class StreamUpdate(Input):
    # Only "ended" may be set: a stream goes live when media arrives, not on request.
    status: Literal["ended"] | None = Field(
        default=None, description="`ended` ends a live stream, as DELETE does"
    )
    title: Title | None = None
    description: Description | None = None
    category: CategorySlug | None = None
    tags: Tags | None = None
    language: Language | None = None
    is_mature: bool | None = None
    scheduled_for: datetime | None = None


class StreamChannel(Output):
    id: uuid.UUID
    slug: str
    name: str
    avatar_url: str | None


class StreamOut(BaseModel):
    id: uuid.UUID
    channel: StreamChannel
    host_id: uuid.UUID
    host_name: str
    title: str
    description: str | None
    category: str | None
    tags: list[str]
    language: str
    is_mature: bool
    status: StreamStatus
    scheduled_for: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    viewer_count: int
    peak_viewer_count: int
    total_tokens_received: int
    created_at: datetime
    playback_url: str | None = None  # HLS master playlist, once the stream went live
    thumbnail_url: str | None = None  # the latest frame, refreshed every few seconds


class OwnStreamOut(StreamOut):
    """A stream as its owner lists it: with the channel's stream key (never for API keys)."""

    stream_key: str | None


class ViewerOut(BaseModel):
    user_id: uuid.UUID
    username: str
    display_name: str
    joined_at: datetime | None  # their POST .../join; null when they joined by socket only


class ViewerCount(BaseModel):
    stream_id: uuid.UUID
    status: StreamStatus
    viewer_count: int
    peak_viewer_count: int


class ViewerList(ViewerCount):
    """The counts and the signed-in viewers in the room now (owner and channel moderators)."""

    viewers: list[ViewerOut]
    has_more: bool


class BrowserIngest(BaseModel):
    socket_path: str
    start_event: str
    data_event: str
    end_event: str


class EncoderAdvice(BaseModel):
    """What to set in OBS (or any encoder) for short segments and low latency."""

    keyframe_interval_seconds: int  # OBS: Settings -> Output -> Keyframe Interval
    max_keyframe_interval_seconds: float  # farther apart: a warning, and the top re-encoded


class StreamHealthOut(BaseModel):
    """What the ingest learnt of the live source (the `stream:health` event's payload)."""

    keyframe_interval: float | None  # seconds, the longest lately; None until measured
    max_keyframe_interval: float
    reencoding: bool  # the best quality is re-encoded because of the keyframes
    warning: str | None  # `keyframe_interval_too_long`, or None
    message: str | None  # what to read and do


class StreamKeyOut(BaseModel):
    stream_key: str
    rtmp_server: str
    rtmp_url: str
    browser_ingest: BrowserIngest
    channel_id: uuid.UUID
    created_at: datetime
    encoder: EncoderAdvice
    # While the channel is live from this node's RTMP ingest; None otherwise.
    stream_health: StreamHealthOut | None = None


WEBRTC_NOT_YET = "WebRTC is not available yet: publish with RTMP or browser ingest, play HLS"


class WebRtcEndpoint(BaseModel):
    """Where WebRTC goes once an SFU is configured: WHIP to publish, WHEP to play."""

    available: bool = False
    protocol: Literal["whip", "whep"]
    url: str | None = None
    detail: str = WEBRTC_NOT_YET


class StreamStartOut(StreamKeyOut):
    """What a broadcaster needs to go live with this stream (seed 002's `/start`)."""

    stream_id: uuid.UUID
    status: StreamStatus
    already_live: bool
    playback_url: str
    webrtc: WebRtcEndpoint


class IceServer(BaseModel):
    """An RTCIceServer, as the browser's RTCPeerConnection takes it."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class PlaybackUrls(BaseModel):
    master_playlist: str  # HLS; Low-Latency HLS (parts, blocking reloads) when `low_latency`
    low_latency: bool
    livestream_playlist: str  # the same playlist at seed 004's path
    thumbnail: str


class ViewerSocket(BaseModel):
    """How to follow the stream live: connect with `auth: {token: viewer_token}`, then join."""

    path: str = "/socket.io"
    join_event: str = "stream:join"
    join_payload: dict[str, str]


class StreamJoinOut(BaseModel):
    """What a viewer needs to watch (seed 002's `/join`)."""

    stream_id: uuid.UUID
    channel_id: uuid.UUID
    status: StreamStatus
    is_live: bool
    viewer_count: int
    playback: PlaybackUrls
    # A chat token for the socket handshake (signed-in sessions); null for anonymous callers
    # and API keys, whose sockets connect without one and watch read-only.
    viewer_token: str | None
    viewer_token_expires_in: int | None
    socket: ViewerSocket
    ice_servers: list[IceServer]  # empty until WebRTC exists
    webrtc: WebRtcEndpoint
