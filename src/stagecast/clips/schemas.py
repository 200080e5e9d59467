"""What the clips API takes and returns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, StringConstraints, model_validator

from stagecast.accounts.schemas import Input

MIN_SECONDS = 5.0
MAX_SECONDS = 60.0
DEFAULT_SECONDS = 30.0

ClipTitle = Annotated[str, StringConstraints(min_length=1, max_length=140)]
ClipSort = Literal["views", "likes", "recent"]
ClipPeriod = Literal["day", "week", "month", "all"]


class ClipCreate(Input):
    """A clip of a live stream (the last `duration` seconds before `offset` from the live
    edge) or of a recording (`duration` seconds from `start`, seconds into the VOD)."""

    stream_id: uuid.UUID | None = None
    vod_id: uuid.UUID | None = None
    duration: float = Field(default=DEFAULT_SECONDS, ge=MIN_SECONDS, le=MAX_SECONDS)
    offset: float = Field(
        default=0.0, ge=0, le=3600, description="live: seconds behind the live edge it ends"
    )
    start: float | None = Field(
        default=None, ge=0, description="seconds into the recording it starts (VODs, DVR)"
    )
    title: ClipTitle | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.stream_id is None) == (self.vod_id is None):
            raise ValueError("give exactly one of stream_id and vod_id")
        if self.vod_id is not None and self.start is None:
            raise ValueError("a clip of a recording (vod_id) needs its start")
        return self


class ClipUpdate(Input):
    """A new title, and/or a trim: `start` and `end` are seconds into the original range."""

    title: ClipTitle | None = None
    start: float | None = Field(default=None, ge=0)
    end: float | None = Field(default=None, gt=0)


class ClipCreator(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str


class ClipOut(BaseModel):
    id: uuid.UUID
    stream_id: uuid.UUID
    channel_id: uuid.UUID
    channel_slug: str
    vod_id: uuid.UUID | None
    creator: ClipCreator | None
    title: str
    duration: float = Field(description="seconds the clip shows")
    start: float = Field(description="seconds into the recording the clip starts")
    trim_start: float = Field(description="seconds into the original range it starts")
    original_duration: float = Field(description="the original range: trims stay inside it")
    playlist_url: str = Field(description="HLS, playable as soon as the clip is made")
    mp4_state: Literal["pending", "ready", "failed"]
    mp4_url: str | None
    mp4_duration: float | None
    thumbnail_url: str | None
    media_state: Literal["referencing", "copied"]
    view_count: int
    like_count: int
    liked: bool | None = Field(default=None, description="whether you like it (signed in)")
    url: str
    embed_url: str
    created_at: datetime


class LikeState(BaseModel):
    liked: bool
    like_count: int


class ViewState(BaseModel):
    counted: bool = Field(description="false when this viewer's view counted within the hour")
    view_count: int
