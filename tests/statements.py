"""Count the SQL statements an app sends, and the transaction mode each ran in.

SQLAlchemy's `before_cursor_execute` sees every statement, the BEGINs our SQLite setup sends
included. Each is recorded with the asyncio task that ran it, so that the app's background
work (viewer counts, the event bus, batched "last used" writes) is told apart from requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine.interfaces import CacheStats
from sqlalchemy.ext.asyncio import AsyncEngine

from stagecast.db.engine import transaction_mode

BACKGROUND_TASKS = frozenset(
    {"viewers", "event-bus", "cluster-commands", "media-nodes", "money-jobs", "auth-touches"}
)
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|WITH\b.*\b(INSERT|UPDATE|DELETE)\b)", re.I | re.S)


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    mode: str  # "write": a writing transaction; "read": read-only; "autocommit": none
    # False: SQLAlchemy found no cache key for it, so it compiled the statement again (a
    # multi-VALUES insert does that); our BEGINs and other raw SQL count as cached.
    cached: bool = True

    @property
    def is_begin(self) -> bool:
        return self.sql.lstrip().upper().startswith("BEGIN")

    @property
    def writes(self) -> bool:
        return bool(_WRITE.match(self.sql))


@dataclass
class StatementLog:
    """What the app sent, from `install` on; `capture()` collects one stretch of it."""

    engines: tuple[AsyncEngine, ...]
    statements: list[Statement] = field(default_factory=list)
    _recording: bool = False

    def install(self) -> StatementLog:
        dialect = self.engines[0].dialect.name

        def before(conn: Any, _cursor: Any, sql: str, _params: Any, context: Any, *_: Any) -> None:
            if not self._recording:
                return
            task = asyncio.current_task()
            if task is not None and task.get_name() in BACKGROUND_TASKS:
                return
            options = dict(conn.get_execution_options())
            cached = context.compiled is None or context.cache_hit is not CacheStats.NO_CACHE_KEY
            self.statements.append(Statement(sql, transaction_mode(options, dialect), cached))

        for engine in self.engines:
            event.listen(engine.sync_engine, "before_cursor_execute", before)
        return self

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[Statement]]:
        """The statements sent inside the block (BEGINs included: see `queries`)."""
        self.statements = []
        self._recording = True
        try:
            yield self.statements
        finally:
            self._recording = False


def queries(statements: list[Statement]) -> list[str]:
    """The statements but the BEGINs (which only SQLite sends as statements)."""
    return [s.sql for s in statements if not s.is_begin]
