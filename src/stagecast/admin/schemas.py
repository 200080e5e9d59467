"""Admin and operations: what goes in and out."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

AnnouncementType = Literal["info", "warning", "error"]
Outcome = Literal["success", "denied", "rejected", "error"]


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    occurred_at: datetime
    actor_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    action: str = Field(description="the route's name (`tip_stream`), or a named read")
    resource: str
    resource_ids: dict[str, Any] = Field(description="the route's path parameters")
    method: str
    route: str = Field(description="the route's template, never the raw path")
    status: int
    outcome: Outcome
    ip_hash: str | None = Field(description="keyed hash of the client address")
    request_id: str | None
    details: dict[str, Any]


class FlagOut(BaseModel):
    name: str
    enabled: StrictBool
    default: bool
    description: str
    updated_at: datetime | None = None
    updated_by_id: uuid.UUID | None = None


class FlagsOut(BaseModel):
    data: list[FlagOut]


class FlagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool


class MaintenanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool
    message: str | None = Field(default=None, max_length=500)
    ends_at: datetime | None = Field(default=None, description="when it should be over")


class MaintenanceOut(BaseModel):
    enabled: StrictBool
    message: str | None = None
    ends_at: datetime | None = None
    started_at: datetime | None = None
    retry_after: int | None = Field(default=None, description="seconds, while enabled")


class AnnouncementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    content: str = Field(min_length=1, max_length=5000)
    type: AnnouncementType = "info"
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    @model_validator(mode="after")
    def _window(self) -> Self:
        for name in ("starts_at", "ends_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone (e.g. 2026-01-01T10:00:00Z)")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class AnnouncementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    content: str
    type: AnnouncementType
    starts_at: datetime | None
    ends_at: datetime | None
    created_at: datetime
    created_by_id: uuid.UUID | None


class ActiveAnnouncements(BaseModel):
    data: list[AnnouncementOut]
    maintenance: MaintenanceOut | None = Field(
        default=None, description="present while maintenance mode is on (the web app's page)"
    )


class DayFigures(BaseModel):
    day: date
    new_users: int = 0
    streams: int = 0
    hours_streamed: float = 0
    tokens_bought: int = 0
    purchases_cents: int = 0
    tokens_tipped: int = 0
    platform_fee_tokens: int = 0
    payouts_tokens: int = 0


class OverviewTotals(BaseModel):
    users: int = Field(description="accounts (not deleted), all time")
    new_users: int
    creators: int = Field(description="users who own a channel, all time")
    live_now: int
    streams: int = Field(description="streams that started in the period")
    hours_streamed: float
    tokens_bought: int
    purchases_cents: int = Field(description="money taken for tokens, less refunds")
    tokens_tipped: int = Field(description="tips, donations and gifts")
    platform_fee_tokens: int = Field(description="the platform's revenue in tokens (fees)")
    payouts_tokens: int = Field(description="paid out to creators")
    payouts_pending: int = Field(description="payouts requested, approved or retrying now")
    reports_open: int


class AnalyticsOverview(BaseModel):
    period_from: datetime = Field(serialization_alias="from")
    period_to: datetime = Field(serialization_alias="to")
    currency: str
    totals: OverviewTotals
    days: list[DayFigures]


class ValidateIn(BaseModel):
    """Seed 003's `POST /validate`: any of the fields, each checked as registration would."""

    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, max_length=1024)
    # The seed's "body varies by validation type": `{type, value}` names one of the three.
    type: Literal["username", "email", "password"] | None = None
    value: str | None = Field(default=None, max_length=1024)

    @model_validator(mode="after")
    def _something(self) -> Self:
        if (self.type is None) != (self.value is None):
            raise ValueError("type and value go together")
        if self.type is not None:
            if getattr(self, self.type) is not None:
                raise ValueError(f"give {self.type} once")
            setattr(self, self.type, self.value)
        if self.username is None and self.email is None and self.password is None:
            raise ValueError("give at least one of username, email, password")
        return self


class FieldCheck(BaseModel):
    valid: bool
    available: bool | None = Field(default=None, description="usernames and emails")
    errors: list[str] = Field(default_factory=list)
    strength: Literal["weak", "fair", "strong"] | None = Field(
        default=None, description="passwords"
    )


class ValidateOut(BaseModel):
    valid: bool
    username: FieldCheck | None = None
    email: FieldCheck | None = None
    password: FieldCheck | None = None


class UploadKind(BaseModel):
    kind: str
    max_bytes: int
    content_types: list[str]
    extensions: list[str]
    description: str


class UploadLimits(BaseModel):
    max_request_bytes: int
    kinds: list[UploadKind]


class TypeCheck(BaseModel):
    allowed: bool
    kind: str
    content_type: str | None
    extension: str | None
    max_bytes: int
    reason: str | None = None


class CsrfToken(BaseModel):
    csrf_token: str
    header: str = "X-CSRF-Token"
    expires_in: int


class ComponentStatus(BaseModel):
    status: Literal["ok", "degraded", "down", "disabled"]
    details: dict[str, Any] = Field(default_factory=dict)


class PlatformStatus(BaseModel):
    status: Literal["operational", "degraded", "down", "maintenance"]
    timestamp: datetime
    components: dict[str, ComponentStatus]
    maintenance: MaintenanceOut
