"""What the privacy routes take and answer."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from stagecast.privacy.models import ExportStatus


class OptOutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    do_not_sell: bool


class PrivacyOut(BaseModel):
    """Your privacy choices, and whether this request carried Global Privacy Control."""

    do_not_sell: bool
    global_privacy_control: bool = Field(description="`Sec-GPC: 1` on this request")


class ExportOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: ExportStatus
    created_at: datetime
    ready_at: datetime | None
    expires_at: datetime | None
    size_bytes: int | None


class ExportRequested(ExportOut):
    message: str = "Your export is being prepared; a notification brings its download link"


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=1024)
