"""What the API says about a recording, and what it takes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from stagecast.accounts.schemas import Input
from stagecast.chat.schemas import ChatMessageOut
from stagecast.streams.schemas import Title
from stagecast.vods.models import Visibility


class VodOut(BaseModel):
    id: uuid.UUID
    stream_id: uuid.UUID
    channel_id: uuid.UUID
    title: str
    visibility: Visibility
    duration_seconds: float
    size_bytes: int
    renditions: list[str]
    playlist_url: str
    thumbnail_url: str | None
    # Seek previews: a WebVTT track whose cues point into a thumbnail sprite
    # (`sprite.jpg#xywh=x,y,w,h`); null until the previews job has made them.
    previews_url: str | None
    preview_sprite_url: str | None
    created_at: datetime


class VodUpdate(Input):
    title: Title | None = None
    visibility: Visibility | None = None


class ProgressIn(Input):
    position_seconds: float = Field(ge=0, description="where the viewer is, from the start")


class ProgressOut(BaseModel):
    vod_id: uuid.UUID
    position_seconds: float
    duration_seconds: float
    updated_at: datetime | None = Field(description="null: the viewer has not watched it yet")


class ReplayMessage(ChatMessageOut):
    offset_seconds: float = Field(description="when it was sent, in seconds into the recording")
