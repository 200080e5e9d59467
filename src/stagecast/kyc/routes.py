"""HTTP routes of KYC: a performer's submission and history, staff review (seed 002)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status

from stagecast.accounts.deps import AdminUser, CurrentUser
from stagecast.admin import audit, system
from stagecast.admin.schemas import UploadKind
from stagecast.deps import PageDep, RuntimeDep, SessionDep
from stagecast.errors import problem_responses
from stagecast.kyc import service as kyc
from stagecast.kyc.models import KycStatus
from stagecast.kyc.schemas import (
    KycReject,
    KycSubmitted,
    KycVerificationOut,
    KycVerificationReview,
    LegalName,
)
from stagecast.media.store import MediaStore
from stagecast.pagination import Page, make_page
from stagecast.runtime import Runtime

system.register_upload_kind(
    "kyc_document",
    lambda s: UploadKind(
        kind="kyc_document",
        max_bytes=s.kyc.max_document_bytes,
        content_types=sorted(kyc.DOCUMENT_TYPES),
        extensions=[".jpg", ".jpeg", ".png", ".webp", ".heic", ".pdf"],
        description="an identity document for POST /api/v1/kyc/submit (checked by content)",
    ),
)

router = APIRouter(prefix="/kyc", tags=["kyc"], responses=problem_responses(401))
admin_router = APIRouter(prefix="/admin/kyc", tags=["admin"], responses=problem_responses(401, 403))


def _store(runtime: Runtime) -> MediaStore:
    if runtime.private_store is None:
        raise RuntimeError("the private store is made by create_app")
    return runtime.private_store


async def _read(file: UploadFile, limit: int) -> kyc.Upload:
    # One byte over the limit is enough to refuse; the rest is never read into memory.
    return kyc.Upload(filename=file.filename or "document", data=await file.read(limit + 1))


@router.post(
    "/submit",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(409, 413, 415, 422),
)
async def submit(
    user: CurrentUser,
    session: SessionDep,
    runtime: RuntimeDep,
    legal_name: Annotated[LegalName, Form(description="as on the document")],
    date_of_birth: Annotated[date, Form(description="as on the document (YYYY-MM-DD)")],
    documents: Annotated[
        list[UploadFile], File(description="JPEG, PNG, WebP, HEIC or PDF; checked by content")
    ],
) -> KycSubmitted:
    """Submit identity documents (multipart/form-data) for review."""
    settings = runtime.settings.kyc
    uploads = [await _read(file, settings.max_document_bytes) for file in documents]
    async with session.begin():
        verification = await kyc.submit(
            session,
            runtime.secrets,
            _store(runtime),
            settings,
            user=user,
            legal_name=legal_name,
            date_of_birth=date_of_birth,
            uploads=uploads,
        )
        out = await kyc.present(session, verification)
    return KycSubmitted(**out.model_dump())


@router.get("/verifications", responses=problem_responses(422))
async def list_verifications(
    user: CurrentUser, session: SessionDep, page: PageDep
) -> Page[KycVerificationOut]:
    """Your verifications, newest first (seed 002's KYC history)."""
    async with session.begin():
        rows, info = await kyc.list_verifications(session, params=page, user_id=user.id)
        items = [await kyc.present(session, row) for row in rows]
    return make_page(items, info)


@router.get("/{verification_id}/status", responses=problem_responses(404))
async def verification_status(
    verification_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> KycVerificationOut:
    """One of your verifications and where its review stands."""
    async with session.begin():
        verification = await kyc.get_own(session, user=user, verification_id=verification_id)
        return await kyc.present(session, verification)


@admin_router.get("", responses=problem_responses(422))
async def review_queue(
    _admin: AdminUser,
    session: SessionDep,
    runtime: RuntimeDep,
    page: PageDep,
    status_: Annotated[KycStatus | None, Query(alias="status")] = None,
) -> Page[KycVerificationReview]:
    """Verifications to review (by status), newest first, with the submitted details."""
    async with session.begin():
        rows, info = await kyc.list_verifications(session, params=page, status=status_)
        items = [await kyc.present_review(session, runtime.secrets, row) for row in rows]
    return make_page(items, info)


@admin_router.get("/{verification_id}", responses=problem_responses(404))
async def review(
    verification_id: uuid.UUID,
    request: Request,
    _admin: AdminUser,
    session: SessionDep,
    runtime: RuntimeDep,
) -> KycVerificationReview:
    """One verification with its legal name and date of birth (an audited read)."""
    async with session.begin():
        verification = await kyc.get_verification(session, verification_id)
        out = await kyc.present_review(session, runtime.secrets, verification)
    audit.record_access(
        request, action="kyc_review_read", resource="kyc",
        resource_ids={"verification_id": verification_id, "user_id": verification.user_id},
    )  # fmt: skip
    return out


@admin_router.get(
    "/documents/{document_id}",
    response_class=Response,
    responses={
        200: {"content": {t: {} for t in sorted(kyc.DOCUMENT_TYPES)}, "description": "the file"},
        **problem_responses(404),
    },
)
async def document(
    document_id: uuid.UUID,
    request: Request,
    _admin: AdminUser,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    """A document's file, decrypted (staff only; never cached; an audited read)."""
    async with session.begin():
        found, data = await kyc.read_document(
            session, runtime.secrets, _store(runtime), document_id=document_id
        )
    audit.record_access(
        request, action="kyc_document_read", resource="kyc",
        resource_ids={"document_id": document_id, "verification_id": found.verification_id},
    )  # fmt: skip
    return Response(
        data,
        media_type=found.content_type,
        headers={"Cache-Control": "no-store", "Content-Disposition": "inline"},
    )


@admin_router.post("/{verification_id}/approve", responses=problem_responses(404, 409, 422))
async def approve(
    verification_id: uuid.UUID, admin: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> KycVerificationReview:
    """Approve a pending verification: what the settings gate opens to its owner."""
    async with session.begin():
        verification = await kyc.decide(
            session,
            runtime.secrets,
            runtime.settings.kyc,
            actor=admin,
            verification_id=verification_id,
            approve=True,
        )
        return await kyc.present_review(session, runtime.secrets, verification)


@admin_router.post("/{verification_id}/reject", responses=problem_responses(404, 409, 422))
async def reject(
    verification_id: uuid.UUID,
    body: KycReject,
    admin: AdminUser,
    session: SessionDep,
    runtime: RuntimeDep,
) -> KycVerificationReview:
    """Reject a pending verification with a reason its owner is told."""
    async with session.begin():
        verification = await kyc.decide(
            session,
            runtime.secrets,
            runtime.settings.kyc,
            actor=admin,
            verification_id=verification_id,
            approve=False,
            reason=body.reason,
        )
        return await kyc.present_review(session, runtime.secrets, verification)
