"""What the API says about a recording."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class VodOut(BaseModel):
    id: uuid.UUID
    stream_id: uuid.UUID
    channel_id: uuid.UUID
    title: str
    duration_seconds: float
    size_bytes: int
    renditions: list[str]
    playlist_url: str
    thumbnail_url: str | None
    created_at: datetime
