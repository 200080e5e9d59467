"""KYC: performers submit documents, staff approve or reject them, approval unlocks what the
settings say (payouts by default; going live and tips when listed).

Documents are checked by their content (magic bytes, the `filetype` library), never by their
names; each is sealed with AES-256-GCM (crypto.SecretBox) into the private store, and the
legal name and date of birth are Fernet-encrypted in their row. Files are deleted
`KYC_DOCUMENT_RETENTION_DAYS` after the decision by the retention job.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import filetype
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts import service as accounts
from stagecast.accounts.models import User
from stagecast.config import KycAction, KycSettings
from stagecast.crypto import SecretBox
from stagecast.db.base import utcnow
from stagecast.errors import (
    AppError,
    Conflict,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from stagecast.kyc.models import KycDocument, KycStatus, KycVerification
from stagecast.kyc.schemas import KycDocumentOut, KycVerificationOut, KycVerificationReview
from stagecast.media.store import MediaNotFound, MediaStore
from stagecast.notifications import service as notifications
from stagecast.pagination import PageInfo, PageParams, by_id, paginate

PII_PURPOSE = "kyc-pii"
FILE_PURPOSE = "kyc-documents"
# What a document may be, by its content: photos or scans of an ID, or a PDF of one.
DOCUMENT_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/heic", "application/pdf"}
)
KYC_APPROVED, KYC_REJECTED = "kyc.approved", "kyc.rejected"


class KycRequired(AppError):
    status, code, title = 403, "KYC_REQUIRED", "Identity verification is required"


class KycNotFound(NotFound):
    code, title = "KYC_NOT_FOUND", "No such verification"


class KycNotPending(Conflict):
    code, title = "KYC_NOT_PENDING", "This verification was already decided"


class KycAlreadySubmitted(Conflict):
    code, title = "KYC_ALREADY_SUBMITTED", "A verification is already pending or approved"


class DocumentTooLarge(PayloadTooLarge):
    code, title = "DOCUMENT_TOO_LARGE", "A document is larger than allowed"


class DocumentTypeRefused(UnsupportedMediaType):
    code, title = "DOCUMENT_TYPE_REFUSED", "Documents must be JPEG, PNG, WebP, HEIC or PDF"


class DocumentsDeleted(NotFound):
    code, title = "KYC_DOCUMENTS_DELETED", "The documents were deleted after their retention"


@dataclass(frozen=True, slots=True)
class Upload:
    """A document as it arrived: its bytes, and the name it came with (for messages only)."""

    filename: str
    data: bytes


def document_type(upload: Upload, settings: KycSettings) -> str:
    """The document's real type, from its content; refuse what is not a document or too big."""
    if len(upload.data) > settings.max_document_bytes:
        raise DocumentTooLarge(
            f"{upload.filename!r} is over {settings.max_document_bytes} bytes",
        )
    kind = filetype.guess(upload.data)
    if kind is None or kind.mime not in DOCUMENT_TYPES:
        found = kind.mime if kind else "unrecognised content"
        raise DocumentTypeRefused(f"{upload.filename!r} is {found}, whatever its name says")
    return str(kind.mime)


def age_on(born: date, today: date) -> int:
    """Whole years between a date of birth and `today`."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _check_age(born: date, settings: KycSettings, today: date) -> None:
    if born > today:
        message = "The date of birth is in the future"
    elif age_on(born, today) < settings.minimum_age:
        message = f"Performers must be at least {settings.minimum_age} years old"
    else:
        return
    raise ValidationFailed(
        message,
        errors=[
            {"field": "date_of_birth", "in": "body", "message": message, "type": "value_error"}
        ],
    )


def storage_key(verification_id: uuid.UUID, document_id: uuid.UUID) -> str:
    return f"kyc/{verification_id}/{document_id}"


async def submit(
    session: AsyncSession,
    box: SecretBox,
    store: MediaStore,
    settings: KycSettings,
    *,
    user: User,
    legal_name: str,
    date_of_birth: date,
    uploads: list[Upload],
) -> KycVerification:
    """Record a verification and seal its documents; nothing is stored if any is refused."""
    if not uploads or len(uploads) > settings.max_documents:
        raise ValidationFailed(f"Send between 1 and {settings.max_documents} documents")
    types = [document_type(upload, settings) for upload in uploads]
    _check_age(date_of_birth, settings, utcnow().date())
    open_one = await session.scalar(
        select(KycVerification.id).where(
            KycVerification.user_id == user.id,
            KycVerification.status.in_((KycStatus.PENDING.value, KycStatus.APPROVED.value)),
        )
    )
    if open_one is not None:
        raise KycAlreadySubmitted()
    verification = KycVerification(
        user_id=user.id,
        status=KycStatus.PENDING.value,
        legal_name_encrypted=box.encrypt(PII_PURPOSE, legal_name),
        date_of_birth_encrypted=box.encrypt(PII_PURPOSE, date_of_birth.isoformat()),
    )
    session.add(verification)
    await session.flush()
    for upload, content_type in zip(uploads, types, strict=True):
        document = KycDocument(
            verification_id=verification.id,
            content_type=content_type,
            size_bytes=len(upload.data),
            storage_key="",
        )
        session.add(document)
        await session.flush()
        document.storage_key = storage_key(verification.id, document.id)
        sealed = box.encrypt_bytes(FILE_PURPOSE, upload.data, context=document.storage_key)
        await store.write(document.storage_key, sealed)
    await session.flush()
    return verification


async def _documents(session: AsyncSession, verification_id: uuid.UUID) -> list[KycDocument]:
    return list(
        await session.scalars(
            select(KycDocument)
            .where(KycDocument.verification_id == verification_id)
            .order_by(KycDocument.id)
        )
    )


async def present(session: AsyncSession, verification: KycVerification) -> KycVerificationOut:
    documents = await _documents(session, verification.id)
    return KycVerificationOut(
        id=verification.id,
        user_id=verification.user_id,
        status=KycStatus(verification.status),
        created_at=verification.created_at,
        decided_at=verification.decided_at,
        rejection_reason=verification.rejection_reason,
        documents=[KycDocumentOut.model_validate(d) for d in documents],
        documents_deleted=verification.documents_deleted_at is not None,
    )


def verified_date_of_birth(box: SecretBox, verification: KycVerification) -> date | None:
    raw = box.decrypt(PII_PURPOSE, verification.date_of_birth_encrypted)
    return date.fromisoformat(raw) if raw else None


async def present_review(
    session: AsyncSession, box: SecretBox, verification: KycVerification
) -> KycVerificationReview:
    """A verification with its decrypted name and date of birth (staff only)."""
    out = await present(session, verification)
    return KycVerificationReview(
        **out.model_dump(),
        legal_name=box.decrypt(PII_PURPOSE, verification.legal_name_encrypted),
        date_of_birth=verified_date_of_birth(box, verification),
        decided_by_id=verification.decided_by_id,
    )


async def get_verification(session: AsyncSession, verification_id: uuid.UUID) -> KycVerification:
    verification = await session.get(KycVerification, verification_id)
    if verification is None:
        raise KycNotFound()
    return verification


async def get_own(
    session: AsyncSession, *, user: User, verification_id: uuid.UUID
) -> KycVerification:
    """A verification of the caller's; another user's answers as missing (staff use /admin)."""
    verification = await session.get(KycVerification, verification_id)
    if verification is None or verification.user_id != user.id:
        raise KycNotFound()
    return verification


async def list_verifications(
    session: AsyncSession,
    *,
    params: PageParams,
    user_id: uuid.UUID | None = None,
    status: KycStatus | None = None,
) -> tuple[list[KycVerification], PageInfo]:
    """Verifications, newest first: one user's (their history) or everyone's (the queue)."""
    query = select(KycVerification)
    if user_id is not None:
        query = query.where(KycVerification.user_id == user_id)
    if status is not None:
        query = query.where(KycVerification.status == status.value)
    return await paginate(session, query, keys=by_id(KycVerification.id), params=params)


async def decide(
    session: AsyncSession,
    box: SecretBox,
    settings: KycSettings,
    *,
    actor: User,
    verification_id: uuid.UUID,
    approve: bool,
    reason: str | None = None,
) -> KycVerification:
    """Approve or reject a pending verification and tell its owner.

    An approval records the verified date of birth on the profile, checked once more against
    the minimum age (the settings may have changed since the submission)."""
    verification = await get_verification(session, verification_id)
    if verification.status != KycStatus.PENDING.value:
        raise KycNotPending()
    user = await session.get_one(User, verification.user_id)
    if approve:
        born = verified_date_of_birth(box, verification)
        if born is None:
            raise ValidationFailed(
                "The stored date of birth cannot be read (server secret changed?)"
            )
        _check_age(born, settings, utcnow().date())
        user.date_of_birth_encrypted = accounts.seal_birth_date(box, born)
    verification.status = (KycStatus.APPROVED if approve else KycStatus.REJECTED).value
    verification.decided_at = utcnow()
    verification.decided_by_id = actor.id
    verification.rejection_reason = None if approve else reason
    await session.flush()
    await notifications.notify(
        session,
        user_id=user.id,
        kind=KYC_APPROVED if approve else KYC_REJECTED,
        payload={"verification_id": str(verification.id), "reason": verification.rejection_reason},
    )
    return verification


async def read_document(
    session: AsyncSession, box: SecretBox, store: MediaStore, *, document_id: uuid.UUID
) -> tuple[KycDocument, bytes]:
    """A document's decrypted bytes (staff only: the route checks the role)."""
    document = await session.get(KycDocument, document_id)
    if document is None:
        raise NotFound("No such document")
    verification = await session.get_one(KycVerification, document.verification_id)
    if verification.documents_deleted_at is not None:
        raise DocumentsDeleted()
    try:
        sealed = await store.read(document.storage_key)
    except MediaNotFound as exc:
        raise DocumentsDeleted("The document's file is gone") from exc
    data = box.decrypt_bytes(FILE_PURPOSE, sealed, context=document.storage_key)
    if data is None:
        raise AppError("The document does not decrypt: it was altered or the secret changed")
    return document, data


async def is_verified(session: AsyncSession, user_id: uuid.UUID) -> bool:
    """Whether the user holds an approved verification."""
    return bool(
        await session.scalar(
            select(
                exists().where(
                    KycVerification.user_id == user_id,
                    KycVerification.status == KycStatus.APPROVED.value,
                )
            )
        )
    )


async def require_verified(
    session: AsyncSession, settings: KycSettings, *, user_id: uuid.UUID, action: KycAction
) -> None:
    """Raise KYC_REQUIRED when the settings make `action` need a verification the user lacks."""
    if settings.requires(action) and not await is_verified(session, user_id):
        what = {"payouts": "receive payouts", "going_live": "go live", "tips": "receive tips"}
        raise KycRequired(f"Verify your identity to {what[action]}")


async def _delete_files(
    session: AsyncSession, store: MediaStore, verification: KycVerification, now: datetime
) -> None:
    await store.delete_prefix(f"kyc/{verification.id}/")
    verification.documents_deleted_at = now


async def delete_expired_documents(
    session: AsyncSession, store: MediaStore, settings: KycSettings, *, now: datetime
) -> int:
    """Delete the files of verifications decided longer ago than the retention; return how
    many verifications lost theirs."""
    cutoff = now - timedelta(days=settings.document_retention_days)
    due = await session.scalars(
        select(KycVerification).where(
            KycVerification.decided_at.is_not(None),
            KycVerification.decided_at <= cutoff,
            KycVerification.documents_deleted_at.is_(None),
        )
    )
    count = 0
    for verification in due:
        await _delete_files(session, store, verification, now)
        count += 1
    await session.flush()
    return count


async def erase_user(
    session: AsyncSession, store: MediaStore, *, user_id: uuid.UUID, now: datetime
) -> None:
    """An erasure: the documents go now; the decision stays, its name and date of birth
    replaced by nothing readable."""
    rows = await session.scalars(select(KycVerification).where(KycVerification.user_id == user_id))
    for verification in rows:
        if verification.documents_deleted_at is None:
            await _delete_files(session, store, verification, now)
        verification.legal_name_encrypted = ""
        verification.date_of_birth_encrypted = ""
    await session.flush()
