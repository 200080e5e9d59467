"""Money's scheduled work: renew due subscriptions, send due payout transfers, make due
checkouts.

Runs in-process, once a minute, on every node. A transfer or checkout is due when its retry time
came, or when an attempt began longer ago than `MONEY_RESUME_AFTER_SECONDS` and never recorded
its outcome (the server died during the call): the job takes it up again with the same
idempotency key, so the provider acts once. Each is taken under its row's lock, so two nodes
passing at once cannot send one attempt twice; no transaction is open while a provider is
called.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog

from stagecast.db.base import utcnow
from stagecast.money import payouts, purchases, subscriptions
from stagecast.money.providers import ProviderError
from stagecast.runtime import Runtime

log = structlog.get_logger(__name__)

INTERVAL_SECONDS = 60


async def run_once(runtime: Runtime, *, now: datetime | None = None) -> None:
    """One pass of every money job (`now`: the time it runs as; tests move it forward)."""
    now = now or utcnow()
    settings = runtime.settings.money
    async with runtime.db.session() as session, session.begin():
        renewed = await subscriptions.renew_due(session, settings, now=now)
    if renewed:
        log.info("subscriptions_due_handled", count=renewed)
    if runtime.payout_provider is not None:
        async with runtime.db.read_session() as session, session.begin():
            due = await payouts.due_transfers(session, now=now)
        for payout_id in due:
            try:
                await payouts.send_transfer(
                    runtime.db, settings, runtime.payout_provider, payout_id, now=now,
                    due_only=True,
                )  # fmt: skip
            except Exception:
                # One payout's trouble (recorded or not) must not hold up the others.
                log.exception("payout_transfer_job_failed", payout_id=str(payout_id))
    if runtime.payments is not None:
        async with runtime.db.read_session() as session, session.begin():
            checkouts = await purchases.due_checkouts(
                session, provider=runtime.payments.name, now=now
            )
        for purchase_id in checkouts:
            try:
                await purchases.resume_checkout(
                    runtime.db, settings, runtime.payments, purchase_id, now=now
                )
            except ProviderError:
                pass  # recorded (tried again later), and logged by the provider
            except Exception:
                log.exception("checkout_job_failed", purchase_id=str(purchase_id))


async def run_forever(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(INTERVAL_SECONDS)
        try:
            await run_once(runtime)
        except Exception:
            log.exception("money_jobs_failed")
