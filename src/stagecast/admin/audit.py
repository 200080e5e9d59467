"""The audit log: every POST, PUT, PATCH and DELETE (and the sensitive reads domains name),
who did it, to what, from where, and how it ended.

Recording costs a request nothing it waits for: the middleware builds the record once the
response has been sent and hands it to the node's `AuditWriter`, which writes a batch of them
in one INSERT about once a second. A batch that fails to write is kept and tried again; a
record that cannot be kept (three failed tries, or a full buffer) is logged whole at error
level (`audit_record_dropped`), never dropped silently. Client addresses are stored as a keyed
hash (`SecretBox.lookup_hash("audit-ip", ip)`): an admin can find every action from one
address, nobody can read the addresses back from the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Select, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stagecast.admin.models import AuditEvent
from stagecast.db.base import new_id, utcnow
from stagecast.middleware import route_template
from stagecast.pagination import PageInfo, PageParams, by_id, paginate

if TYPE_CHECKING:
    from stagecast.runtime import Runtime

log = structlog.get_logger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Engine.IO's long-polling POSTs are socket traffic, not actions.
UNAUDITED_PREFIXES = ("/socket.io",)
API_PREFIX = "/api/v1"
MAX_TRIES = 3
IP_PURPOSE = "audit-ip"


@dataclass(slots=True)
class AuditRecord:
    """One row to be written."""

    action: str
    resource: str
    method: str
    route: str
    status: int
    outcome: str
    actor_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    resource_ids: dict[str, Any] = field(default_factory=dict)
    ip_hash: str | None = None
    request_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: uuid.UUID = field(default_factory=new_id)
    occurred_at: datetime = field(default_factory=utcnow)
    tries: int = 0

    def row(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("tries")
        return values


def outcome_of(status: int) -> str:
    """success (2xx/3xx), denied (401/403), rejected (other 4xx, 503), error (5xx)."""
    if status < 400:
        return "success"
    if status in {401, 403}:
        return "denied"
    if status < 500 or status == 503:
        return "rejected"
    return "error"


def resource_of(template: str) -> str:
    """The first fixed segment of a route under the API (`admin/<segment>` for admin routes),
    `livestream` for seed 004's, else the template's first segment."""
    path = template.removeprefix(API_PREFIX) if template.startswith(API_PREFIX) else template
    fixed = [s for s in path.split("/") if s and not s.startswith("{")]
    if not fixed:
        return "unknown"
    if fixed[0] == "admin" and len(fixed) > 1:
        return f"admin/{fixed[1]}"[:80]
    return fixed[0][:80]


def hash_ip(runtime: Runtime, ip: str | None) -> str | None:
    return runtime.secrets.lookup_hash(IP_PURPOSE, ip) if ip else None


class AuditWriter:
    """A node's unwritten records, written in batches."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.pending: deque[AuditRecord] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()

    def add(self, record: AuditRecord) -> None:
        settings = self.runtime.settings.admin
        if len(self.pending) >= settings.audit_buffer_max:
            _log_dropped(record, reason="buffer_full")
            return
        self.pending.append(record)
        if len(self.pending) >= settings.audit_batch_size:
            self._wake.set()

    def start(self) -> None:
        if self.runtime.settings.admin.background:
            self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()  # what is left before the node goes

    async def _run(self) -> None:
        interval = self.runtime.settings.admin.audit_flush_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("audit_flush_failed")

    async def flush(self) -> int:
        """Write what is pending, a batch at a time; return how many rows were written."""
        written = 0
        async with self._flushing:
            while self.pending:
                size = self.runtime.settings.admin.audit_batch_size
                batch = [self.pending.popleft() for _ in range(min(size, len(self.pending)))]
                if await self._insert(batch):
                    written += len(batch)
                    continue
                log.exception("audit_write_failed", records=len(batch))
                # One bad record must not hold the others back: each is tried on its own,
                # and those that fail again wait for the next flush.
                failed = []
                for record in batch:
                    if await self._insert([record]):
                        written += 1
                    else:
                        failed.append(record)
                self._keep(failed)
                if failed:
                    break
        return written

    async def _insert(self, batch: list[AuditRecord]) -> bool:
        try:
            async with self.runtime.db.session() as session, session.begin():
                await session.execute(insert(AuditEvent), [r.row() for r in batch])
        except Exception:
            return False
        return True

    def _keep(self, failed: list[AuditRecord]) -> None:
        for record in reversed(failed):
            record.tries += 1
            if record.tries >= MAX_TRIES:
                _log_dropped(record, reason="write_failed")
            else:
                self.pending.appendleft(record)


def _log_dropped(record: AuditRecord, *, reason: str) -> None:
    values = {
        k: str(v) if isinstance(v, (uuid.UUID, datetime)) else v for k, v in record.row().items()
    }
    log.error("audit_record_dropped", reason=reason, record=values)


def _actor(scope: Scope) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    actor = scope.get("state", {}).get("audit_actor")
    return actor if isinstance(actor, tuple) else (None, None)


class AuditMiddleware:
    """Record every write request once its response is sent (whatever the outcome)."""

    def __init__(self, app: ASGIApp, *, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in WRITE_METHODS
            or scope["path"].startswith(UNAUDITED_PREFIXES)
            or not self.runtime.settings.admin.audit_enabled
        ):
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self._record(scope, status)

    def _record(self, scope: Scope, status: int) -> None:
        writer = self.runtime.audit
        if writer is None:
            return
        try:
            template = route_template(scope)
            route = scope.get("route")
            matched = template != "<unmatched>"
            actor_id, api_key_id = _actor(scope)
            client = scope.get("client")
            writer.add(
                AuditRecord(
                    action=(getattr(route, "name", None) or "unknown")[:80]
                    if matched
                    else "unmatched",
                    resource=resource_of(template if matched else scope["path"]),
                    method=scope["method"],
                    route=(template if matched else scope["path"])[:300],
                    status=status,
                    outcome=outcome_of(status),
                    actor_id=actor_id,
                    api_key_id=api_key_id,
                    resource_ids={k: str(v) for k, v in scope.get("path_params", {}).items()},
                    ip_hash=hash_ip(self.runtime, client[0] if client else None),
                    request_id=scope.get("state", {}).get("request_id"),
                )
            )
        except Exception:
            # Recording must never break the answer (it has been sent); say so loudly.
            log.exception("audit_record_failed", path=scope.get("path"))


def record_access(
    request: Request,
    *,
    action: str,
    resource: str,
    resource_ids: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record a sensitive read (a KYC document, an export): routes call it after the checks."""
    runtime: Runtime = request.app.state.runtime
    if runtime.audit is None or not runtime.settings.admin.audit_enabled:
        return
    actor_id, api_key_id = _actor(request.scope)
    runtime.audit.add(
        AuditRecord(
            action=action,
            resource=resource,
            method=request.method,
            route=route_template(request.scope),
            status=200,
            outcome="success",
            actor_id=actor_id,
            api_key_id=api_key_id,
            resource_ids={k: str(v) for k, v in (resource_ids or {}).items()},
            ip_hash=hash_ip(runtime, request.client.host if request.client else None),
            request_id=getattr(request.state, "request_id", None),
            details=details or {},
        )
    )


@dataclass(frozen=True, slots=True)
class AuditFilters:
    actor_id: uuid.UUID | None = None
    action: str | None = None
    resource: str | None = None
    outcome: str | None = None
    ip_hash: str | None = None
    request_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(filters: AuditFilters) -> Select[AuditEvent]:
    query = select(AuditEvent)
    for column, value in (
        (AuditEvent.actor_id, filters.actor_id),
        (AuditEvent.action, filters.action),
        (AuditEvent.resource, filters.resource),
        (AuditEvent.outcome, filters.outcome),
        (AuditEvent.ip_hash, filters.ip_hash),
        (AuditEvent.request_id, filters.request_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(AuditEvent.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.occurred_at < filters.until)
    return query


async def list_events(
    session: AsyncSession, *, filters: AuditFilters, params: PageParams
) -> tuple[list[AuditEvent], PageInfo]:
    """Audit events, newest first."""
    return await paginate(session, _filtered(filters), keys=by_id(AuditEvent.id), params=params)


async def purge_expired(session: AsyncSession, *, retention_days: int, now: datetime) -> int:
    """Delete the records older than the retention: the audit log's only delete."""
    cutoff = now - timedelta(days=retention_days)
    result = await session.execute(delete(AuditEvent).where(AuditEvent.occurred_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
