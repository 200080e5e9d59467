"""The operator's tables: the audit log, feature flags, maintenance mode, announcements."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, event
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from stagecast.db.base import Base, JSONType, new_id, utcnow


class AuditEvent(Base):
    """One recorded action: append-only (no code path updates a row; retention deletes)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_actor", "actor_id", "id"),
        Index("ix_audit_events_action", "action", "id"),
        Index("ix_audit_events_resource", "resource", "id"),
    )

    # Time-ordered (v7), made when the request was answered: the list's order.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # No foreign key: a record outlives its actor's account and is never rewritten for it.
    actor_id: Mapped[uuid.UUID | None]
    api_key_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(80))  # the route's name, e.g. `tip_stream`
    resource: Mapped[str] = mapped_column(String(80))  # e.g. `streams`, `admin/feature-flags`
    resource_ids: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    method: Mapped[str] = mapped_column(String(8))
    route: Mapped[str] = mapped_column(String(300))
    status: Mapped[int]
    outcome: Mapped[str] = mapped_column(String(16), index=True)  # success|denied|rejected|error
    # Keyed hash (crypto.SecretBox.lookup_hash, purpose "audit-ip"): searchable, not readable.
    ip_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    request_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


@event.listens_for(AuditEvent, "before_update")
def _audit_is_append_only(_mapper: Mapper[Any], _connection: Any, _target: Any) -> None:
    raise RuntimeError("audit events are append-only")


class FeatureFlag(Base):
    """An operator's switch for a feature; a flag without a row has its default."""

    __tablename__ = "feature_flags"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class MaintenanceState(Base):
    """The platform's maintenance mode: one row (`id = "platform"`), absent means off."""

    __tablename__ = "maintenance_state"

    id: Mapped[str] = mapped_column(String(16), primary_key=True, default="platform")
    enabled: Mapped[bool] = mapped_column(default=False)
    message: Mapped[str | None] = mapped_column(String(500))
    ends_at: Mapped[datetime | None]  # what viewers are told, and `Retry-After`
    started_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class Announcement(Base):
    """A banner for everyone, optionally between two times."""

    __tablename__ = "announcements"
    __table_args__ = (Index("ix_announcements_window", "starts_at", "ends_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16), default="info")  # info | warning | error
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
