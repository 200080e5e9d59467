"""What the moderation API takes and returns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from stagecast.accounts.schemas import Input, UserPublic
from stagecast.moderation.models import (
    CaseStatus,
    FlagKind,
    ReportedType,
    ReportReason,
    ReportStatus,
    Resolution,
)

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


class ContentReportIn(ReportCreate):
    """A report naming what it reports (`POST /reports`, `POST /moderation/report`)."""

    content_type: ReportedType
    content_id: uuid.UUID


class PersonRef(BaseModel):
    id: uuid.UUID
    username: str


class QueueReport(ReportOut):
    """A report as the queue shows it: with its reporter."""

    reporter: PersonRef | None


class QueueContent(BaseModel):
    """What the case is about, as it is now (`exists` false: it was deleted)."""

    exists: bool
    removed: bool = Field(description="deleted, hidden or suspended (by a decision or a filter)")
    title: str | None = None
    text: str | None = None
    author: PersonRef | None = None
    channel_id: uuid.UUID | None = None
    url: str | None = Field(default=None, description="the web app's path to it")


class QueueItem(BaseModel):
    """One reported or flagged object: its reports and flags grouped, and the decision."""

    id: uuid.UUID
    content_type: ReportedType
    content_id: uuid.UUID
    status: CaseStatus
    report_count: int = Field(description="reports of it, merged duplicates counted")
    reporter_count: int
    reasons: dict[str, int] = Field(description="report count per reason")
    flag_count: int
    flag_kinds: list[FlagKind]
    first_reported_at: datetime
    last_reported_at: datetime
    decided_at: datetime | None
    decided_by: uuid.UUID | None
    decision_note: str | None
    decision_action: Resolution | None
    content: QueueContent
    reports: list[QueueReport] = Field(description="the latest five reports")


class QueuePage(BaseModel):
    items: list[QueueItem]
    next_cursor: str | None
    has_more: bool


Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class ApproveIn(Input):
    note: Note | None = None


class RejectIn(Input):
    note: Note | None = None
    action: Literal["remove", "suspend", "ban"] = Field(
        default="remove",
        description="remove the content; suspend or ban its owner's account as well",
    )


class AdminReportOut(ReportOut):
    reporter: PersonRef | None
    case_id: uuid.UUID | None
    resolution: Resolution | None
    resolved_by: uuid.UUID | None
    resolved_at: datetime | None


class AdminReportsPage(BaseModel):
    items: list[AdminReportOut]
    total: int
    limit: int
    offset: int


class ResolveIn(Input):
    action: Literal["resolve", "dismiss", "ban", "warn"] = Field(
        description="resolve: remove the content; dismiss: keep it; ban: remove it and ban "
        "its owner; warn: keep it and warn its owner"
    )
    note: Note | None = None


class FlagOut(BaseModel):
    id: uuid.UUID
    kind: FlagKind
    content_type: ReportedType
    content_id: uuid.UUID
    channel_id: uuid.UUID | None
    user: PersonRef | None
    evidence: dict[str, Any]
    case_id: uuid.UUID | None
    created_at: datetime
