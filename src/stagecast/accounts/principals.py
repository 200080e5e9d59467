"""Who an access token's session belongs to, remembered by each node for a few seconds.

Authenticating a bearer token reads the user and the session in one statement; with this
cache a request whose session was seen lately sends none. An entry lives at most
`auth_principal_cache_seconds`, and never past the access token's or the session's expiry.
Everything that could make it wrong removes it first, on every node:

- a revocation (logout, sign-out-everywhere, refresh-token reuse, a password change, a
  suspension, an erasure) is the committed `auth:revoked` event;
- any change to the user's row (role, status, profile) is the committed `user:changed`
  event, recorded by a flush hook whichever code made the change.

The node that commits forgets at commit, before it answers; the cluster bus carries both
events to the other nodes (milliseconds with Redis). If the bus loses Redis, each node forgets
everything, since what it missed meanwhile cannot be known. API keys are not cached.

A cached user is a detached snapshot of the row's columns; each request gets its own copy in
its session (`Session.merge(load=False)`: no statement), so a route may read, lazy-load and
change it as it would a user it loaded itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, make_transient_to_detached

from stagecast.accounts.models import User
from stagecast.accounts.service import AUTH_REVOKED, USER_CHANGED
from stagecast.db.base import utcnow
from stagecast.realtime.bus import DomainEvent, publish
from stagecast.realtime.cluster import ClusterBus

MAX_ENTRIES = 50_000  # sessions remembered per node; the oldest entry makes room


@dataclass(frozen=True, slots=True)
class CachedPrincipal:
    user: User  # detached: never handed out itself, only merged copies
    user_id: uuid.UUID
    # time.monotonic(): the TTL, the token's and the session's expiry, whichever comes first
    valid_until: float


class PrincipalCache:
    """Recently authenticated sessions of this node, keyed by session id."""

    def __init__(self, *, ttl_seconds: float, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[uuid.UUID, CachedPrincipal] = {}
        self.hits = 0
        self.misses = 0
        # Counts forgets: a read that began before one may be stale, so it is not remembered.
        self.epoch = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_seconds > 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, session: Session, *, user_id: uuid.UUID, session_id: uuid.UUID) -> User | None:
        """The user of a live, remembered session, as an object of `session`; None: ask the
        database."""
        entry = self._entries.get(session_id)
        if entry is None or entry.user_id != user_id:
            self.misses += 1
            return None
        if entry.valid_until <= time.monotonic():
            self._entries.pop(session_id, None)
            self.misses += 1
            return None
        self.hits += 1
        user: User = session.merge(entry.user, load=False)
        return user

    def remember(
        self,
        user: User,
        *,
        session_id: uuid.UUID,
        session_expires_at: datetime,
        token_expires_at: datetime,
        read_at_epoch: int,
    ) -> None:
        """Note a session the database just vouched for (its user active, it unrevoked), read
        when `epoch` was `read_at_epoch`: if anything was forgotten since, the read may predate
        that change, and is not kept."""
        if not self.enabled or read_at_epoch != self.epoch:
            return
        now = utcnow()
        lifetime = min(
            self.ttl_seconds,
            (token_expires_at - now).total_seconds(),
            (session_expires_at - now).total_seconds(),
        )
        if lifetime <= 0:
            return
        if len(self._entries) >= self.max_entries and session_id not in self._entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[session_id] = CachedPrincipal(
            user=_snapshot(user),
            user_id=user.id,
            valid_until=time.monotonic() + lifetime,
        )

    def forget_user(self, user_id: uuid.UUID, *, keep: uuid.UUID | None = None) -> None:
        """Drop every remembered session of a user (but `keep`)."""
        self.epoch += 1
        gone = [
            sid for sid, entry in self._entries.items() if entry.user_id == user_id and sid != keep
        ]
        for sid in gone:
            del self._entries[sid]

    def forget_all(self) -> None:
        self.epoch += 1
        self._entries.clear()

    # --- what makes entries wrong ------------------------------------------------------------

    def on_commit(self, committed: DomainEvent) -> None:
        """This node's commits: forget before the request that committed answers."""
        if committed.name in (AUTH_REVOKED, USER_CHANGED):
            self.follow(committed.payload)

    async def on_command(self, payload: dict[str, Any]) -> None:
        """Other nodes' commits, through the cluster bus (this node's own come back too)."""
        self.follow(payload)

    def follow_cluster(self, cluster: ClusterBus) -> None:
        """Forget what any node's commit made wrong; everything when Redis may have lost
        messages on the way (the subscription dropped)."""
        cluster.on(AUTH_REVOKED, self.on_command)
        cluster.on(USER_CHANGED, self.on_command)
        cluster.on_gap.append(self.forget_all)

    def follow(self, payload: dict[str, Any]) -> None:
        try:
            user_id = uuid.UUID(str(payload["user_id"]))
            session_id = _optional_id(payload.get("session_id"))
            keep = _optional_id(payload.get("keep_session_id"))
        except (KeyError, ValueError):
            # Unreadable: forgetting everything is always safe.
            self.forget_all()
            return
        if session_id is not None:
            self.epoch += 1
            entry = self._entries.get(session_id)
            if entry is not None and entry.user_id == user_id:
                del self._entries[session_id]
            return
        self.forget_user(user_id, keep=keep)


class PrincipalMetrics(Collector):
    """The cache's lookups and size, read when /metrics is scraped."""

    def __init__(self, cache: PrincipalCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        lookups = CounterMetricFamily(
            "stagecast_auth_principal_cache_lookups",
            "Bearer-token authentications answered from the principal cache (hit) or the "
            "database (miss).",
            labels=["result"],
        )
        lookups.add_metric(["hit"], self.cache.hits)
        lookups.add_metric(["miss"], self.cache.misses)
        yield lookups
        yield GaugeMetricFamily(
            "stagecast_auth_principal_cache_entries",
            "Sessions this node remembers.",
            value=len(self.cache),
        )


def _optional_id(value: object) -> uuid.UUID | None:
    return uuid.UUID(str(value)) if value else None


def _snapshot(user: User) -> User:
    """A detached copy of the user's loaded columns, safe to keep beyond its session."""
    state = inspect(user)
    copy = User()
    for column in inspect(User).column_attrs:
        if column.key not in state.unloaded:
            setattr(copy, column.key, getattr(user, column.key))
    make_transient_to_detached(copy)
    return copy


# --- the flush hook: any change to a user's row is announced ---------------------------------


def _announce_changed_users(session: Session, _context: object, _instances: object) -> None:
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, User) and (obj in session.deleted or session.is_modified(obj)):
            publish(session, USER_CHANGED, {"user_id": str(obj.id)}, rooms=())


_installed = False


def install_session_hooks() -> None:
    """Announce every flushed change of a user (once per process)."""
    global _installed  # noqa: PLW0603 - a process-wide registration, done once
    if not _installed:
        event.listen(Session, "before_flush", _announce_changed_users)
        _installed = True
