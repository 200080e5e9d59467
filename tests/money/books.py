"""The ledger's invariants, checked against the database (shared by the money tests)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.money.models import LedgerAccount, LedgerEntry


async def check_books(session: AsyncSession) -> None:
    """Every account's balance is the sum of its entries, no user account is negative, and
    all accounts sum to zero."""
    rows = await session.execute(
        select(LedgerEntry.account_id, func.sum(LedgerEntry.amount)).group_by(
            LedgerEntry.account_id
        )
    )
    sums = {account_id: int(total) for account_id, total in rows.all()}
    accounts = (await session.scalars(select(LedgerAccount))).all()
    for account in accounts:
        assert account.balance == sums.get(account.id, 0), account.key
        if not account.allow_negative:
            assert account.balance >= 0, account.key
    assert sum(a.balance for a in accounts) == 0
