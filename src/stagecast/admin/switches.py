"""What each node knows of the feature flags and maintenance mode, shared through the database.

Both are read on hot paths (maintenance on every API request), so a node keeps them in memory:
it reads them again when they are older than `ADMIN_SWITCHES_CACHE_SECONDS`, or at once when
an admin changes one (the change is sent to every node on the cluster bus after its commit).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select

from stagecast.admin.models import FeatureFlag, MaintenanceState

if TYPE_CHECKING:
    from stagecast.runtime import Runtime

log = structlog.get_logger(__name__)

TOPIC = "admin:switches"


@dataclass(frozen=True, slots=True)
class Maintenance:
    enabled: bool = False
    message: str | None = None
    ends_at: datetime | None = None
    started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The flags stored (those without a row have their default) and maintenance mode."""

    flags: dict[str, bool] = field(default_factory=dict)
    maintenance: Maintenance = field(default_factory=Maintenance)


class Switches:
    """One node's cached snapshot; `current()` reads the database only when it is stale."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._snapshot: Snapshot | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    def install(self) -> None:
        """Forget the snapshot whenever any node says a switch changed."""
        if self.runtime.cluster is not None:
            self.runtime.cluster.on(TOPIC, self._on_changed)

    async def _on_changed(self, _payload: dict[str, object]) -> None:
        self.forget()

    def forget(self) -> None:
        self._snapshot = None

    async def current(self) -> Snapshot:
        ttl = self.runtime.settings.admin.switches_cache_seconds
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - self._read_at < ttl:
            return snapshot
        async with self._lock:
            if self._snapshot is not None and time.monotonic() - self._read_at < ttl:
                return self._snapshot
            try:
                fresh = await self._read()
            except Exception:
                # The database being away must not turn every request into a 500 here: the
                # request's own queries will say so. Keep the last snapshot if there is one.
                log.warning("switches_read_failed", exc_info=True)
                return snapshot or Snapshot()
            self._snapshot, self._read_at = fresh, time.monotonic()
            return fresh

    async def _read(self) -> Snapshot:
        async with self.runtime.db.read_session() as session, session.begin():
            flags = {row.name: row.enabled for row in await session.scalars(select(FeatureFlag))}
            state = await session.get(MaintenanceState, "platform")
        maintenance = (
            Maintenance(True, state.message, state.ends_at, state.started_at)
            if state is not None and state.enabled
            else Maintenance()
        )
        return Snapshot(flags=flags, maintenance=maintenance)

    async def announce_change(self) -> None:
        """Tell every node (this one included) to read the switches again; after the commit."""
        self.forget()
        if self.runtime.cluster is not None:
            await self.runtime.cluster.send(TOPIC, {})
