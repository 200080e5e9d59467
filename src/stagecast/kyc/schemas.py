"""What the KYC routes take and answer."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from stagecast.kyc.models import KycStatus

LegalName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]


class KycDocumentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    content_type: str
    size_bytes: int
    created_at: datetime


class KycVerificationOut(BaseModel):
    """A verification as its owner sees it (seed 002's `kyc` status)."""

    id: uuid.UUID
    user_id: uuid.UUID
    status: KycStatus
    created_at: datetime
    decided_at: datetime | None
    rejection_reason: str | None
    documents: list[KycDocumentOut]
    documents_deleted: bool


class KycVerificationReview(KycVerificationOut):
    """What staff see to decide: the decrypted name and date of birth too."""

    legal_name: str | None
    date_of_birth: date | None
    decided_by_id: uuid.UUID | None


class KycReject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class KycSubmitted(KycVerificationOut):
    message: str = Field(default="Your documents were received and wait for review")
