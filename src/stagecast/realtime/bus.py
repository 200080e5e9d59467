"""The event bus: services record domain events, Socket.IO rooms get them after commit.

A service calls `publish(session, event, payload, rooms=...)` inside its transaction. The
events wait on the session and go out only once the transaction commits (a rolled-back
transaction publishes nothing), in order, through one queue per process. Socket.IO's Redis
manager (when `STAGECAST_REDIS_URL` is set) carries them to sockets on every node; each node
hands them to its sockets in their dialects (realtime/dialects.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from stagecast.db.base import utcnow

log = structlog.get_logger(__name__)

PENDING = "stagecast.pending_events"
BUS = "stagecast.event_bus"


def channel_room(channel_id: uuid.UUID | str) -> str:
    return f"channel:{channel_id}"


def user_room(user_id: uuid.UUID | str) -> str:
    return f"user:{user_id}"


# Every socket of platform staff (moderators, admins): the moderation queue's live updates.
STAFF_ROOM = "staff:moderation"


def envelope(event_name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """DESIGN.md's event envelope."""
    return {"type": event_name, "payload": payload, "timestamp": utcnow().isoformat()}


@dataclass(frozen=True, slots=True)
class DomainEvent:
    name: str
    payload: dict[str, Any]
    rooms: tuple[str, ...]


def publish(session: Any, name: str, payload: dict[str, Any], *, rooms: tuple[str, ...]) -> None:
    """Record an event to send once the session's transaction commits."""
    session.info.setdefault(PENDING, []).append(DomainEvent(name, payload, rooms))


class EventBus:
    """Sends committed events to Socket.IO rooms, in order, from one task."""

    def __init__(self, sio: Any) -> None:
        self._sio = sio
        self._queue: asyncio.Queue[DomainEvent] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # Called at commit, before delivery (e.g. to drop cached pages the event made stale).
        self.on_commit: list[Callable[[DomainEvent], None]] = []

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="event-bus")

    async def stop(self) -> None:
        # Deliver what was committed before shutting down, then stop.
        await self._queue.join()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def submit(self, events: list[DomainEvent]) -> None:
        for item in events:
            for listener in self.on_commit:
                listener(item)
            self._queue.put_nowait(item)

    async def drain(self) -> None:
        """Wait until every submitted event was sent (tests and shutdown)."""
        await self._queue.join()

    async def emit(self, name: str, payload: dict[str, Any], *, rooms: tuple[str, ...]) -> None:
        """Send an event now (for state that is not in the database, like viewer counts)."""
        message = envelope(name, payload)
        for room in rooms:
            # Once per room: each socket gets it in its own dialect (realtime/fanout.py).
            await self._sio.emit(name, message, room=room)

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self.emit(item.name, item.payload, rooms=item.rooms)
            except Exception:
                log.exception("event_delivery_failed", domain_event=item.name)
            finally:
                self._queue.task_done()


def _after_commit(session: Session) -> None:
    pending: list[DomainEvent] | None = session.info.pop(PENDING, None)
    bus: EventBus | None = session.info.get(BUS)
    if pending and bus is not None:
        bus.submit(pending)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended without a commit taking the events: drop them.
    if transaction.parent is None:
        session.info.pop(PENDING, None)


_installed = False


def install_session_hooks() -> None:
    """Hook event publishing into every SQLAlchemy session (once per process)."""
    global _installed  # noqa: PLW0603 - a process-wide registration, done once
    if not _installed:
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_transaction_end", _after_transaction_end)
        _installed = True
