"""Retry a whole request when its database connection turned out dead (there is no pre-ping).

A PostgreSQL restart, a failover or a killed backend leaves dead connections in the pool.
Instead of pinging every connection at checkout (a round trip on every request), the first
use of a dead one fails with a disconnect error; SQLAlchemy then invalidates the whole pool,
and this middleware runs the request again from the start on a fresh connection, provided
nothing was answered yet and no commit of a write had started (a commit cut off midway may
have happened: running the request again could do it twice, so that one is a 503).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, SessionTransaction
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stagecast.db.engine import transaction_mode
from stagecast.errors import AppError
from stagecast.middleware import send_problem

log = structlog.get_logger(__name__)

REQUEST_ATTEMPT = "stagecast_request_attempt"


class DatabaseUnavailable(AppError):
    status, code, title = 503, "DATABASE_UNAVAILABLE", "The database connection was lost"


@dataclass(slots=True)
class RequestAttempt:
    """What one run of a request did to the database, as far as a retry cares."""

    commit_started: bool = False


def is_disconnect(error: BaseException) -> bool:
    """Whether `error` (or one it was raised from or grouped with) is a lost connection."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend((current.__cause__, current.__context__))
    return False


_MAY_WRITE = "stagecast_transaction_may_write"


def _on_after_begin(session: Session, _transaction: object, connection: Connection) -> None:
    # Not an autocommit read (authentication's), nor a read-only transaction (GETs').
    mode = transaction_mode(connection.get_execution_options(), connection.dialect.name)
    if mode == "write":
        session.info[_MAY_WRITE] = True


def _on_after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_MAY_WRITE, None)


def _on_before_commit(session: Session) -> None:
    # A commit of a transaction that holds no writing connection (one that read, or one that
    # never connected, as authentication from the principal cache) cannot have done anything.
    attempt: RequestAttempt | None = session.info.get(REQUEST_ATTEMPT)
    if attempt is not None and session.info.get(_MAY_WRITE):
        attempt.commit_started = True


_installed = False


def install_session_hooks() -> None:
    """Let sessions report to their request's attempt that a commit of a transaction that may
    have written began (once per process)."""
    global _installed  # noqa: PLW0603 - a process-wide registration, done once
    if not _installed:
        event.listen(Session, "after_begin", _on_after_begin)
        event.listen(Session, "after_transaction_end", _on_after_transaction_end)
        event.listen(Session, "before_commit", _on_before_commit)
        _installed = True


class DisconnectRetryMiddleware:
    """Run an HTTP request again (up to `retries` times) after a database disconnect."""

    def __init__(self, app: ASGIApp, *, retries: int) -> None:
        self.app = app
        self.retries = retries

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.retries == 0:
            await self.app(scope, receive, send)
            return
        received: list[Message] = []  # the body as the app read it, replayed on a retry
        replay: list[Message] = []
        started = False

        async def recording_receive() -> Message:
            if replay:
                return replay.pop(0)
            message = await receive()
            if message["type"] == "http.request":
                received.append(message)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        for attempt_number in range(self.retries + 1):
            attempt = RequestAttempt()
            state: dict[str, Any] = scope.setdefault("state", {})
            state[REQUEST_ATTEMPT] = attempt
            replay[:] = list(received)
            try:
                await self.app(scope, recording_receive, watching_send)
            except Exception as error:
                if started or not is_disconnect(error):
                    raise
                if attempt.commit_started:
                    log.warning("database_disconnect_during_commit", path=scope["path"])
                    await send_problem(send, scope, DatabaseUnavailable(
                        "The connection was lost while committing; whether the change was "
                        "made is unknown: look before repeating it"
                    ))  # fmt: skip
                    return
                if attempt_number == self.retries:
                    log.warning("database_disconnect_gave_up", path=scope["path"])
                    await send_problem(
                        send, scope, DatabaseUnavailable("The database is unreachable; try again")
                    )
                    return
                log.warning("database_disconnect_retry", path=scope["path"], attempt=attempt_number)
            else:
                return
