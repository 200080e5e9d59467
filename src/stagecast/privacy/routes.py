"""HTTP routes of privacy: exports (seed 003), erasure, the Do Not Sell opt-out (seed 003)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response, status

from stagecast.accounts import service as accounts
from stagecast.accounts.deps import AdminUser, CurrentUser, SessionPrincipal
from stagecast.accounts.models import User
from stagecast.db.base import utcnow
from stagecast.deps import PageDep, RuntimeDep, SessionDep
from stagecast.errors import PermissionDenied, problem_responses
from stagecast.pagination import Page, make_page
from stagecast.privacy import jobs
from stagecast.privacy import service as privacy
from stagecast.privacy.schemas import ErasureIn, ExportOut, ExportRequested, OptOutIn, PrivacyOut

router = APIRouter(prefix="/users/me", tags=["privacy"], responses=problem_responses(401))
admin_router = APIRouter(
    prefix="/admin/users", tags=["admin"], responses=problem_responses(401, 403)
)


def global_privacy_control(request: Request) -> bool:
    """`Sec-GPC: 1` on the request (the security-headers middleware reads it)."""
    return bool(getattr(request.state, "do_not_sell", False))


@router.post("/export", status_code=status.HTTP_202_ACCEPTED)
async def request_export(
    user: CurrentUser, session: SessionDep, runtime: RuntimeDep, background: BackgroundTasks
) -> ExportRequested:
    """Ask for an archive of everything held about you; a notification brings its link."""
    async with session.begin():
        export = await privacy.request_export(session, user=user)
    if runtime.settings.privacy.jobs_enabled:
        background.add_task(jobs.build_export, runtime, export.id)
    return ExportRequested.model_validate(export, from_attributes=True)


@router.get("/exports", responses=problem_responses(422))
async def list_exports(user: CurrentUser, session: SessionDep, page: PageDep) -> Page[ExportOut]:
    """Your exports, newest first."""
    async with session.begin():
        rows, info = await privacy.list_exports(session, user_id=user.id, params=page)
    return make_page([ExportOut.model_validate(r) for r in rows], info)


@router.get(
    "/exports/{export_id}/download",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {}}, "description": "the archive"},
        **problem_responses(403, 404),
    },
)
async def download_export(
    export_id: uuid.UUID,
    token: Annotated[str, Query(max_length=512, description="from the notification's link")],
    user: CurrentUser,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    """The archive, through the signed link of its notification (its owner, before expiry)."""
    if runtime.private_store is None:
        raise RuntimeError("the private store is made by create_app")
    async with session.begin():
        archive = await privacy.open_export(
            session, runtime.secrets, runtime.private_store,
            user=user, export_id=export_id, token=token, now=utcnow(),
        )  # fmt: skip
    return Response(
        archive,
        media_type="application/zip",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="stagecast-export-{export_id}.zip"',
        },
    )


@router.get("/privacy")
async def get_privacy(user: CurrentUser, request: Request) -> PrivacyOut:
    """Your Do Not Sell choice, and whether this request sent Global Privacy Control."""
    return PrivacyOut(
        do_not_sell=user.do_not_sell, global_privacy_control=global_privacy_control(request)
    )


@router.post("/privacy/opt-out", responses=problem_responses(422))
async def opt_out(
    body: OptOutIn, user: CurrentUser, session: SessionDep, request: Request
) -> PrivacyOut:
    """Set the CCPA Do Not Sell or Share choice (seed 003)."""
    async with session.begin():
        stored = await privacy.set_do_not_sell(
            session, user=await session.get_one(User, user.id), value=body.do_not_sell
        )
    return PrivacyOut(
        do_not_sell=stored.do_not_sell, global_privacy_control=global_privacy_control(request)
    )


async def _erase(runtime: RuntimeDep, session: SessionDep, user_id: uuid.UUID) -> None:
    if runtime.private_store is None:
        raise RuntimeError("the private store is made by create_app")
    async with session.begin():
        owned = await privacy.erase(
            session, runtime.private_store, runtime.settings.privacy,
            user=await accounts.get_user(session, user_id), now=utcnow(),
        )  # fmt: skip
    if runtime.media is not None:
        # A stream of the erased creator's that is live here ends now (its key is gone).
        for channel_id in owned:
            await runtime.media.disconnect_channel(channel_id, reason="the account was erased")


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(403, 422))
async def erase_me(
    body: ErasureIn, principal: SessionPrincipal, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """Erase your account (right to erasure): send your password. This cannot be undone."""
    # Argon2 outside the transaction: it is slow by design and must not hold a write lock.
    await accounts.verify_credentials(runtime.passwords, principal.user, body.password)
    await _erase(runtime, session, principal.user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@admin_router.delete(
    "/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404)
)
async def admin_erase(
    user_id: uuid.UUID, admin: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """Erase an account on its owner's behalf (a request by mail, a court order)."""
    if user_id == admin.id:
        raise PermissionDenied("Erase your own account from your settings, with your password")
    await _erase(runtime, session, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
