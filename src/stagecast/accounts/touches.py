""" "Last used" of sessions and API keys, written in batches rather than by each request.

Writing it inline would turn every authenticated read into a write (and, on SQLite, make it
queue for the write lock). Requests only note the time in memory; a background task writes
what was noted every `auth_touch_flush_seconds` in one short transaction, and once more when
the app stops. A crash loses at most that interval of "last used", which is what it is for:
a hint shown in the session list, never a security decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime

import structlog
from sqlalchemy import Table, bindparam, update

from stagecast.accounts.models import ApiKey, AuthSession
from stagecast.db.base import utcnow
from stagecast.db.engine import Database

log = structlog.get_logger(__name__)


def _table(model: type[AuthSession] | type[ApiKey]) -> Table:
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


class Touches:
    """The newest use of each session and API key since the last flush."""

    def __init__(self) -> None:
        self.sessions: dict[uuid.UUID, datetime] = {}
        self.api_keys: dict[uuid.UUID, datetime] = {}
        self._task: asyncio.Task[None] | None = None

    def session_used(self, session_id: uuid.UUID) -> None:
        self.sessions[session_id] = utcnow()

    def api_key_used(self, key_id: uuid.UUID) -> None:
        self.api_keys[key_id] = utcnow()

    async def flush(self, db: Database) -> int:
        """Write what was noted; return how many rows were touched."""
        sessions, self.sessions = self.sessions, {}
        keys, self.api_keys = self.api_keys, {}
        if not sessions and not keys:
            return 0
        try:
            async with db.session() as session, session.begin():
                for table, seen in ((_table(AuthSession), sessions), (_table(ApiKey), keys)):
                    if seen:  # one executemany per table (Core: the ORM's wants no WHERE)
                        await session.execute(
                            update(table)
                            .where(table.c.id == bindparam("row_id"))
                            .values(last_used_at=bindparam("used_at")),
                            [{"row_id": k, "used_at": v} for k, v in seen.items()],
                        )
        except Exception:
            log.exception("touch_flush_failed", sessions=len(sessions), api_keys=len(keys))
            # Keep them for the next flush (newer uses noted meanwhile win).
            for target, seen in ((self.sessions, sessions), (self.api_keys, keys)):
                for row_id, when in seen.items():
                    target.setdefault(row_id, when)
            return 0
        return len(sessions) + len(keys)

    def start(self, db: Database, every: float) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(db, every), name="auth-touches"
        )

    async def stop(self, db: Database) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush(db)

    async def _run(self, db: Database, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self.flush(db)
