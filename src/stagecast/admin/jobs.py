"""Admin's scheduled work: delete audit records past their retention.

Runs in-process on every node, every `ADMIN_RETENTION_INTERVAL_SECONDS`; two nodes deleting
the same old rows at once only find fewer to delete.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog

from stagecast.admin import audit
from stagecast.db.base import utcnow
from stagecast.runtime import Runtime

log = structlog.get_logger(__name__)


async def run_once(runtime: Runtime, *, now: datetime | None = None) -> int:
    """One pass (`now`: the time it runs as; tests move it forward); the rows deleted."""
    settings = runtime.settings.admin
    async with runtime.db.session() as session, session.begin():
        deleted = await audit.purge_expired(
            session, retention_days=settings.audit_retention_days, now=now or utcnow()
        )
    if deleted:
        log.info("audit_records_expired", count=deleted, days=settings.audit_retention_days)
    return deleted


async def run_forever(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(runtime.settings.admin.retention_interval_seconds)
        try:
            await run_once(runtime)
        except Exception:
            log.exception("admin_jobs_failed")
