"""Attempts at a provider call made outside any transaction: a payout's transfer, a purchase's
checkout.

The row that asks for the call counts its attempts and says when the next one is due. An
attempt is begun (and committed) before the call: that moves `next_attempt_at` past the time a
call can take (`MONEY_RESUME_AFTER_SECONDS`), so the attempt comes due again only if it never
reports back, the server having died during the call. Its outcome then clears the time or, for a
failure that may pass, sets the retry's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from stagecast.config import MoneySettings
from stagecast.money.providers import MAX_ATTEMPTS, retry_delay


class Attempted(Protocol):
    attempts: int
    next_attempt_at: datetime | None


def begin(row: Attempted, settings: MoneySettings, *, now: datetime) -> int:
    """Count a new attempt, due again only if it never reports back; its number."""
    row.attempts += 1
    row.next_attempt_at = now + timedelta(seconds=settings.resume_after_seconds)
    return row.attempts


def is_due(row: Attempted, *, now: datetime) -> bool:
    return row.next_attempt_at is not None and row.next_attempt_at <= now


def retry_later(row: Attempted, *, now: datetime) -> bool:
    """After a failure that may pass: when to try again, or False when that was the last."""
    if row.attempts >= MAX_ATTEMPTS:
        row.next_attempt_at = None
        return False
    row.next_attempt_at = now + retry_delay(row.attempts)
    return True


def done(row: Attempted) -> None:
    """The call's outcome is booked for good: nothing more is due."""
    row.next_attempt_at = None
