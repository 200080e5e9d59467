"""Which commits count as "may have written" for the disconnect retry (db/retry.py): a request
whose commit of a write was cut off is answered 503, anything else is run again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.db import retry
from stagecast.db.engine import Database
from stagecast.db.retry import REQUEST_ATTEMPT, RequestAttempt


@pytest.fixture
async def db(committed_database_url: str) -> AsyncIterator[Database]:
    retry.install_session_hooks()
    database = Database.from_url(committed_database_url)
    try:
        yield database
    finally:
        await database.dispose()


def _watched(session: AsyncSession) -> RequestAttempt:
    attempt = RequestAttempt()
    session.info[REQUEST_ATTEMPT] = attempt
    return attempt


async def test_a_writing_transaction_that_connected_counts(db: Database) -> None:
    async with db.session() as session:
        attempt = _watched(session)
        async with session.begin():
            await session.execute(text("SELECT 1"))
        assert attempt.commit_started


async def test_reads_autocommit_reads_and_unconnected_transactions_do_not(db: Database) -> None:
    async with db.read_session() as session:
        attempt = _watched(session)
        async with session.begin():
            await session.execute(text("SELECT 1"))
        assert not attempt.commit_started
    async with db.session() as session:
        attempt = _watched(session)
        async with session.begin():  # authentication's one statement
            await session.connection(execution_options=db.autocommit_options)
            await session.execute(text("SELECT 1"))
        async with session.begin():  # authentication from the principal cache: no connection
            pass
        assert not attempt.commit_started
        # The same session's next transaction, a write, counts again.
        async with session.begin():
            await session.execute(text("SELECT 1"))
        assert attempt.commit_started
