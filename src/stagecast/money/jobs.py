"""Money's scheduled work: renew due subscriptions, retry due payout transfers.

Runs in-process, once a minute, on every node; each pass takes the rows it changes under the
ledger's locks, so two nodes passing at once cannot renew or pay anything twice.
"""

from __future__ import annotations

import asyncio

import structlog

from stagecast.db.base import utcnow
from stagecast.money import payouts, subscriptions
from stagecast.runtime import Runtime

log = structlog.get_logger(__name__)

INTERVAL_SECONDS = 60


async def run_once(runtime: Runtime) -> None:
    """One pass of every money job."""
    now = utcnow()
    async with runtime.db.session() as session, session.begin():
        renewed = await subscriptions.renew_due(session, runtime.settings.money, now=now)
    if renewed:
        log.info("subscriptions_due_handled", count=renewed)
    if runtime.payout_provider is None:
        return
    async with runtime.db.session() as session, session.begin():
        due = await payouts.due_transfers(session, now=now)
    for payout in due:
        async with runtime.db.session() as session, session.begin():
            fresh = await session.get(type(payout), payout.id, with_for_update=True)
            if fresh is not None and fresh.status in {"approved", "retrying"}:
                await payouts.attempt_transfer(session, runtime.payout_provider, fresh, now=now)


async def run_forever(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(INTERVAL_SECONDS)
        try:
            await run_once(runtime)
        except Exception:
            log.exception("money_jobs_failed")
