"""Privacy's background work: build requested exports, and apply the retention settings
(sessions' IPs, ended sessions, chat, expired exports, held usernames, KYC documents).

An export is built right after its request (a background task of the request) and, should the
server die first, by the next pass of the job, which runs in-process on every node every
`PRIVACY_JOBS_INTERVAL_SECONDS`; one pass takes each pending export under a transaction, so
two nodes build it once (the second finds it no longer pending).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import structlog

from stagecast.db.base import utcnow
from stagecast.kyc import service as kyc
from stagecast.media.store import MediaStore
from stagecast.privacy import service as privacy
from stagecast.runtime import Runtime

log = structlog.get_logger(__name__)


def _store(runtime: Runtime) -> MediaStore:
    if runtime.private_store is None:
        raise RuntimeError("the private store is made by create_app")
    return runtime.private_store


async def build_export(
    runtime: Runtime, export_id: uuid.UUID, *, now: datetime | None = None
) -> None:
    """Build one export in its own transaction (a request's background task, or the job)."""
    async with runtime.db.session() as session, session.begin():
        await privacy.finish_export(
            session, runtime.secrets, _store(runtime), runtime.settings.privacy,
            export_id=export_id, now=now or utcnow(),
        )  # fmt: skip


async def run_once(runtime: Runtime, *, now: datetime | None = None) -> None:
    """One pass: pending exports, then retention (`now`: tests move it forward)."""
    now = now or utcnow()
    async with runtime.db.read_session() as session, session.begin():
        pending = await privacy.pending_exports(session)
    for export_id in pending:
        try:
            await build_export(runtime, export_id, now=now)
        except Exception:
            log.exception("export_failed", export_id=str(export_id))
    store = _store(runtime)
    async with runtime.db.session() as session, session.begin():
        removed = await privacy.apply_retention(session, store, runtime.settings.privacy, now=now)
        removed["kyc_documents"] = await kyc.delete_expired_documents(
            session, store, runtime.settings.kyc, now=now
        )
    if any(removed.values()):
        log.info("retention_applied", **removed)


async def run_forever(runtime: Runtime) -> None:
    while True:
        try:
            await run_once(runtime)
        except Exception:
            log.exception("privacy_jobs_failed")
        await asyncio.sleep(runtime.settings.privacy.jobs_interval_seconds)
