"""Engine and session factory, with SQLite set up for real transactions and WAL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BEGIN = "stagecast_sqlite_begin"
# Execution options for a connection that only reads: a deferred BEGIN on SQLite (no write
# lock), BEGIN READ ONLY on PostgreSQL (a write in it fails instead of slipping through).
READ_ONLY: dict[str, Any] = {SQLITE_BEGIN: "DEFERRED", "postgresql_readonly": True}
# For a single-statement read (authentication): no BEGIN/COMMIT round trips around it. On
# SQLite the connection is already in autocommit (isolation_level None, see below) until our
# BEGIN; resetting the AUTOCOMMIT isolation level would undo that, so no BEGIN is sent instead.
SQLITE_AUTOCOMMIT: dict[str, Any] = {SQLITE_BEGIN: None}
POSTGRES_AUTOCOMMIT: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}
DEFAULT_POOL_RECYCLE_SECONDS = 1800


def transaction_mode(options: Mapping[str, Any], dialect: str) -> str:
    """The kind of transaction a connection with these execution options runs in: "write",
    "read" (read-only) or "autocommit" (none: authentication's single statements)."""
    if dialect == "sqlite":
        begin = options.get(SQLITE_BEGIN, "IMMEDIATE")
        return "autocommit" if begin is None else "read" if begin == "DEFERRED" else "write"
    if options.get("isolation_level") == "AUTOCOMMIT":
        return "autocommit"
    return "read" if options.get("postgresql_readonly") else "write"


# How long a write waits for SQLite's one writing connection before the request gives up (503).
DEFAULT_WRITE_WAIT_SECONDS = 30.0


def _configure_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; take it over so
    # `session.begin()` means a real transaction (SQLAlchemy's documented recipe).
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "busy_timeout=10000",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    # IMMEDIATE takes the write lock up front. A deferred transaction that reads and then
    # writes fails at once with "database is locked" when another writer got in between
    # (WAL cannot upgrade a stale snapshot, and busy_timeout does not apply); IMMEDIATE makes
    # writers queue on busy_timeout instead. Readers outside transactions are not blocked.
    # A connection that only reads (health probes) opts out with READ_ONLY: under WAL a
    # deferred reader never waits for a writer.
    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
        if mode is not None:  # None: each statement is its own (read) transaction
            connection.exec_driver_sql(f"BEGIN {mode}")


def create_engine(
    url: str,
    *,
    echo: bool = False,
    pool_recycle: int = DEFAULT_POOL_RECYCLE_SECONDS,
    writer: bool = False,
    write_wait: float = DEFAULT_WRITE_WAIT_SECONDS,
) -> AsyncEngine:
    """Create the async engine for a database URL (SQLite or PostgreSQL).

    No pre-ping: it costs a round trip per checkout on every request. Connections are
    recycled after `pool_recycle` seconds instead, and a request whose connection turns out
    dead is retried whole (stagecast.middleware.DisconnectRetryMiddleware)."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 10}
        if writer:
            # SQLite has one writer at a time. With one writing connection per process, writes
            # queue in asyncio for it (fairly, up to `write_wait` seconds) instead of
            # contending for the file lock, where a writer that waits past busy_timeout fails
            # with "database is locked" (it did under load: 16 registrations at once on a busy
            # machine). Readers have their own pool and never wait for it.
            kwargs.update(pool_size=1, max_overflow=0, pool_timeout=write_wait)
    else:
        kwargs.update(pool_size=10, max_overflow=20, pool_recycle=pool_recycle)
    engine = create_async_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    return engine


class Database:
    """The engine and session factory one app uses; created and disposed by its lifespan."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        bind: AsyncConnection | None = None,
        read_engine: AsyncEngine | None = None,
    ) -> None:
        self.engine = engine
        # Where reads go: SQLite's own pool of readers beside its one writer; else the same.
        self.read_engine = read_engine or engine
        # Tests bind every session to one connection inside an outer transaction that they
        # roll back; each `session.begin()` then becomes a savepoint.
        options: dict[str, Any] = {"expire_on_commit": False, "autoflush": False}
        if bind is not None:
            options["join_transaction_mode"] = "create_savepoint"
        self.sessionmaker = async_sessionmaker(bind=bind if bind is not None else engine, **options)
        # For routes that only read: on SQLite their transactions begin DEFERRED, so readers
        # never queue behind the write lock (WAL gives them a consistent snapshot).
        self.read_sessionmaker = async_sessionmaker(
            bind=bind if bind is not None else self.read_engine.execution_options(**READ_ONLY),
            **options,
        )
        self._owns_engine = bind is None
        # Options for a transaction of one read statement (Session.connection's
        # execution_options). A connection bound to a test's outer transaction keeps it.
        self.autocommit_options: dict[str, Any] = {}
        if bind is None:
            sqlite = engine.dialect.name == "sqlite"
            self.autocommit_options = SQLITE_AUTOCOMMIT if sqlite else POSTGRES_AUTOCOMMIT

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        echo: bool = False,
        pool_recycle: int = DEFAULT_POOL_RECYCLE_SECONDS,
        write_wait: float = DEFAULT_WRITE_WAIT_SECONDS,
    ) -> Database:
        if make_url(url).get_backend_name() != "sqlite":
            return cls(create_engine(url, echo=echo, pool_recycle=pool_recycle))
        return cls(
            create_engine(url, echo=echo, writer=True, write_wait=write_wait),
            read_engine=create_engine(url, echo=echo),
        )

    @property
    def engines(self) -> tuple[AsyncEngine, ...]:
        """Every engine the app sends statements through (SQLite: the writer and the readers)."""
        if self.read_engine is self.engine:
            return (self.engine,)
        return (self.engine, self.read_engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def one_read(self, session: AsyncSession) -> AsyncIterator[AsyncSession]:
        """A transaction of `session` for one statement that only reads, sent without
        BEGIN/COMMIT around it (one statement is consistent on its own): one round trip on
        PostgreSQL instead of three, no transaction and no lock on SQLite."""
        async with session.begin():
            await session.connection(execution_options=self.autocommit_options)
            yield session

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session for reading only (writing in it may fail on SQLite under contention)."""
        async with self.read_sessionmaker() as session:
            yield session

    async def dispose(self) -> None:
        if self._owns_engine:
            for engine in self.engines:
                await engine.dispose()
