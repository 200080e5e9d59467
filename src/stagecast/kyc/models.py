"""Verifications and their documents; what identifies a person is stored encrypted."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stagecast.db.base import Base, new_id, utcnow


class KycStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class KycVerification(Base):
    """One submission: a legal name, a date of birth and the documents that show them.

    The name and date of birth are Fernet tokens (crypto.SecretBox, purpose `kyc-pii`): a
    database leak alone reveals neither."""

    __tablename__ = "kyc_verifications"
    __table_args__ = (Index("ix_kyc_verifications_user", "user_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Indexed: the review queue lists pending submissions.
    status: Mapped[str] = mapped_column(String(16), default=KycStatus.PENDING.value, index=True)
    legal_name_encrypted: Mapped[str] = mapped_column(Text)
    date_of_birth_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    rejection_reason: Mapped[str | None] = mapped_column(String(500))
    # Set when the retention job (or an erasure) deleted the documents' files.
    documents_deleted_at: Mapped[datetime | None]


class KycDocument(Base):
    """A document file of a verification, AES-GCM encrypted in the private store."""

    __tablename__ = "kyc_documents"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    verification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("kyc_verifications.id", ondelete="CASCADE"), index=True
    )
    # What the content is (from its magic bytes), never what the upload claimed.
    content_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
