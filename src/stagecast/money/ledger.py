"""The double-entry ledger: every movement is one transaction whose entries sum to zero.

Balances are cached on the account row and changed only here, inside the caller's database
transaction, with the accounts locked (PostgreSQL `SELECT … FOR UPDATE` in a fixed order, so
concurrent movements cannot deadlock; SQLite's `BEGIN IMMEDIATE` write lock). A user's accounts
never go negative: a movement that would make one negative is refused before anything changes.
Nothing is updated in place: a correction is a new transaction reversing an old one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Insert, Select, Table, case, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.dml import UpdateBase

from stagecast.db.base import Base, new_id, utcnow
from stagecast.errors import AppError
from stagecast.money.models import (
    SYSTEM_KINDS,
    AccountKind,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
)

T = TypeVar("T", bound=Base)


class InsufficientBalance(AppError):
    status, code, title = 402, "INSUFFICIENT_BALANCE", "Not enough tokens"


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of a movement: tokens into (positive) or out of (negative) an account."""

    account: str  # an account key: wallet_of(user), earnings_of(user), or a system kind
    amount: int


def wallet_of(user_id: uuid.UUID) -> str:
    return f"{AccountKind.WALLET}:{user_id}"


def earnings_of(user_id: uuid.UUID) -> str:
    return f"{AccountKind.EARNINGS}:{user_id}"


def _describe(key: str) -> tuple[str, uuid.UUID | None, bool]:
    """(kind, owner, may go negative) of an account key."""
    kind, _, owner = key.partition(":")
    if kind in SYSTEM_KINDS and not owner:
        return kind, None, True
    if kind in {AccountKind.WALLET, AccountKind.EARNINGS} and owner:
        return kind, uuid.UUID(owner), False
    raise ValueError(f"not an account key: {key!r}")


async def _create_missing(session: AsyncSession, keys: Sequence[str]) -> None:
    """Create the accounts that do not exist yet; concurrent creators do not collide."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = []
    for key in keys:
        kind, owner, negative = _describe(key)
        rows.append(
            {"id": new_id(), "key": key, "kind": kind, "owner_id": owner, "balance": 0,
             "allow_negative": negative}
        )  # fmt: skip
    statement = insert(LedgerAccount).values(rows).on_conflict_do_nothing(index_elements=["key"])
    await session.execute(statement)


# Keys of accounts this process saw committed. Accounts are never deleted, so a movement
# between known accounts skips the existence check and only takes its locks (one statement
# on the hot path). Bounded: past the limit it is cleared and refills.
_KNOWN_LIMIT = 200_000
_known: set[str] = set()


async def lock_accounts(session: AsyncSession, keys: Sequence[str]) -> dict[str, LedgerAccount]:
    """The accounts of `keys` (created when new), locked until the transaction ends.

    Missing accounts are created first and only then is anything locked, all in key order:
    creating one after locking others would take locks out of order and could deadlock.
    Accounts known to exist are locked at once.
    """
    wanted = sorted(set(keys))
    if not _known.issuperset(wanted):
        existing = set(
            await session.scalars(select(LedgerAccount.key).where(LedgerAccount.key.in_(wanted)))
        )
        if len(_known) > _KNOWN_LIMIT:
            _known.clear()
        _known.update(existing)
        if len(existing) < len(wanted):
            await _create_missing(session, [k for k in wanted if k not in existing])
    found = await _lock(session, wanted)
    if len(found) < len(wanted):
        # Known here but gone (a database restored or rolled back under a running process):
        # make them again, as above.
        _known.difference_update(wanted)
        await _create_missing(session, [k for k in wanted if k not in found])
        found = await _lock(session, wanted)
    if len(found) < len(wanted):
        raise RuntimeError(f"ledger accounts vanished: {sorted(set(wanted) - set(found))}")
    return found


async def _lock(session: AsyncSession, wanted: list[str]) -> dict[str, LedgerAccount]:
    query = (
        select(LedgerAccount)
        .where(LedgerAccount.key.in_(wanted))
        .order_by(LedgerAccount.key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {a.key: a for a in (await session.scalars(query)).all()}


async def post(
    session: AsyncSession,
    *,
    kind: str,
    legs: Sequence[Leg],
    description: str,
    actor_id: uuid.UUID | None = None,
    reverses_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
    transaction_id: uuid.UUID | None = None,
    along: Sequence[UpdateBase] = (),
) -> LedgerTransaction:
    """Record one movement; raises InsufficientBalance (changing nothing) if a user's
    account would go negative.

    The writes (the transaction, the balances, the entries, and the caller's `along`
    statements, e.g. a tip's contribution and stream total) go out together: one statement
    of data-modifying CTEs on PostgreSQL, one statement each on SQLite (a hot path, so Core
    rather than the ORM's flush; the returned transaction is attached to the session)."""
    if not legs or sum(leg.amount for leg in legs) != 0:
        raise ValueError("a transaction's entries must sum to zero")
    if any(not isinstance(leg.amount, int) or leg.amount == 0 for leg in legs):
        raise ValueError("entries are whole, non-zero token amounts")
    accounts = await lock_accounts(session, [leg.account for leg in legs])
    after: dict[str, int] = {key: account.balance for key, account in accounts.items()}
    for leg in legs:
        after[leg.account] += leg.amount
    for key, balance in after.items():
        if balance < 0 and not accounts[key].allow_negative:
            raise InsufficientBalance(
                f"This needs {-balance} more tokens than the account holds",
                extra={"shortfall": -balance},
            )
    now = utcnow()
    values: dict[str, Any] = {
        "id": transaction_id or new_id(), "kind": kind, "description": description[:200],
        "actor_id": actor_id, "reverses_id": reverses_id, "details": details or {},
        "created_at": now,
    }  # fmt: skip
    balances: dict[uuid.UUID, int] = {}
    entries = []
    for leg in legs:
        account = accounts[leg.account]
        balances[account.id] = balances.get(account.id, account.balance) + leg.amount
        entries.append(
            {"id": new_id(), "transaction_id": values["id"], "account_id": account.id,
             "amount": leg.amount, "balance_after": balances[account.id], "created_at": now}
        )  # fmt: skip
    account_table = table_of(LedgerAccount)
    await session.flush()  # what the caller added before comes first
    await execute_together(
        session,
        [
            insert(table_of(LedgerTransaction)).values(values),
            update(account_table)
            .where(account_table.c.id.in_(list(balances)))
            .values(balance=case(balances, value=account_table.c.id)),
            Rows(insert(table_of(LedgerEntry)), entries),
            *along,
        ],
    )
    for account in accounts.values():
        set_committed_value(account, "balance", balances.get(account.id, account.balance))
    return attach(session, LedgerTransaction(**values))


def table_of(model: type[Base]) -> Table:
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


def attach(session: AsyncSession, instance: T) -> T:
    """Make an object whose row a Core statement wrote part of the session, unchanged."""
    make_transient_to_detached(instance)
    session.add(instance)
    return instance


@dataclass(frozen=True, slots=True)
class Rows:
    """Several rows for one INSERT. Not `insert().values([...])`: SQLAlchemy cannot cache a
    multi-VALUES insert (it has no cache key), so it was compiled again on every tip."""

    insert: Insert
    rows: Sequence[dict[str, Any]]


async def execute_together(session: AsyncSession, statements: Sequence[UpdateBase | Rows]) -> None:
    """Run write statements in order, in one round trip on PostgreSQL (data-modifying CTEs
    share one snapshot, and foreign keys are checked at the end of the statement, so a row
    and rows referring to it may go in together) and one by one elsewhere (`Rows` as one
    executemany). Every statement keeps one shape per number of rows, so each is compiled
    once and cached."""
    if session.get_bind().dialect.name != "postgresql":
        for statement in statements:
            if isinstance(statement, Rows):
                await session.execute(statement.insert, list(statement.rows))
            else:
                await session.execute(statement)
        return
    single: list[UpdateBase] = []
    for statement in statements:
        if isinstance(statement, Rows):
            single.extend(statement.insert.values(row) for row in statement.rows)
        else:
            single.append(statement)
    *first, last = single
    if first:
        last = last.add_cte(*(s.cte(f"write_{n}") for n, s in enumerate(first)))
    await session.execute(last)


async def reverse(
    session: AsyncSession,
    original: LedgerTransaction,
    *,
    kind: str,
    description: str,
    actor_id: uuid.UUID | None = None,
) -> LedgerTransaction:
    """A new transaction undoing `original` entry for entry (the original stays as it was)."""
    rows = (
        await session.execute(
            select(LedgerAccount.key, LedgerEntry.amount)
            .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
            .where(LedgerEntry.transaction_id == original.id)
        )
    ).all()
    return await post(
        session,
        kind=kind,
        legs=[Leg(key, -amount) for key, amount in rows],
        description=description,
        actor_id=actor_id,
        reverses_id=original.id,
    )


def balance_query(key: str | ColumnElement[str]) -> Select[int]:
    """The query of an account's cached balance (no row: the account never moved)."""
    return select(LedgerAccount.balance).where(LedgerAccount.key == key)


async def balance_of(session: AsyncSession, key: str) -> int:
    """The cached balance of an account (0 when it has never moved)."""
    found = await session.scalar(balance_query(key))
    return int(found or 0)
