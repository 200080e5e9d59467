"""What the moderation API takes and returns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from stagecast.accounts.schemas import Input, UserPublic
from stagecast.moderation.models import ReportedType, ReportReason, ReportStatus

# A timeout lasts from one second to two weeks, as on Twitch.
MAX_TIMEOUT_SECONDS = 14 * 24 * 3600


class BanCreate(Input):
    user_id: uuid.UUID | None = None
    username: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    duration_seconds: int | None = Field(
        default=None, ge=1, le=MAX_TIMEOUT_SECONDS, description="a timeout; omit for a ban"
    )
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class BanOut(BaseModel):
    user: UserPublic
    moderator_id: uuid.UUID | None
    reason: str | None
    created_at: datetime
    expires_at: datetime | None


class ModeratorCreate(Input):
    user_id: uuid.UUID | None = None
    username: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None


class ModeratorOut(BaseModel):
    user: UserPublic
    created_at: datetime


class ReportCreate(Input):
    """A report of a piece of content whose type and id the route names (a VOD's, …)."""

    reason: ReportReason
    details: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None


class ReportOut(BaseModel):
    id: uuid.UUID
    content_type: ReportedType
    content_id: uuid.UUID
    reason: ReportReason
    details: str | None
    status: ReportStatus
    count: int = Field(description="how many times this reporter reported the item (merged)")
    created_at: datetime
    updated_at: datetime
