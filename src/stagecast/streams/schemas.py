"""What the streams and stream-key API takes and returns."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

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


class ViewerCount(BaseModel):
    stream_id: uuid.UUID
    status: StreamStatus
    viewer_count: int
    peak_viewer_count: int


class BrowserIngest(BaseModel):
    socket_path: str
    start_event: str
    data_event: str


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
