"""Data exports: an archive of what the platform holds about a user, built in the background."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from stagecast.db.base import Base, new_id, utcnow


class ExportStatus(enum.StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    EXPIRED = "expired"


class DataExport(Base):
    __tablename__ = "data_exports"
    __table_args__ = (Index("ix_data_exports_user", "user_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Indexed: the job picks up pending exports and expires ready ones.
    status: Mapped[str] = mapped_column(String(16), default=ExportStatus.PENDING.value, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ready_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    storage_key: Mapped[str | None] = mapped_column(String(256))
    size_bytes: Mapped[int | None] = mapped_column(Integer)
