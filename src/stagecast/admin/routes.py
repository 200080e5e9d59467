"""HTTP routes of admin and operations: audit, analytics, announcements, flags, maintenance."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from stagecast.accounts.deps import AdminUser
from stagecast.admin import analytics, announcements, audit, flags, maintenance
from stagecast.admin.models import FeatureFlag
from stagecast.admin.schemas import (
    ActiveAnnouncements,
    AnalyticsOverview,
    AnnouncementIn,
    AnnouncementOut,
    AuditEventOut,
    FlagIn,
    FlagOut,
    FlagsOut,
    MaintenanceIn,
    MaintenanceOut,
    Outcome,
)
from stagecast.admin.switches import Maintenance
from stagecast.admin.system import maintenance_out
from stagecast.db.base import utcnow
from stagecast.deps import PageDep, ReadSessionDep, RuntimeDep, SessionDep
from stagecast.errors import ValidationFailed, problem_responses
from stagecast.pagination import Page, make_page

router = APIRouter(prefix="/admin", tags=["admin"], responses=problem_responses(401, 403))
public_router = APIRouter(tags=["announcements"])

PERIODS = {"day": 1, "week": 7, "month": 30, "quarter": 90, "year": 365}
MAX_PERIOD_DAYS = 366


def _bad_query(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        message, errors=[{"field": field, "in": "query", "message": message, "type": "value_error"}]
    )


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise _bad_query(field, "needs a time zone (e.g. 2026-01-01T00:00:00Z)")
    return value


@router.get("/audit", responses=problem_responses(422))
async def list_audit(
    _admin: AdminUser,
    runtime: RuntimeDep,
    session: ReadSessionDep,
    page: PageDep,
    actor: Annotated[uuid.UUID | None, Query(description="the acting user's id")] = None,
    action: Annotated[str | None, Query(max_length=80, description="a route name")] = None,
    resource: Annotated[str | None, Query(max_length=80)] = None,
    outcome: Annotated[Outcome | None, Query()] = None,
    ip: Annotated[str | None, Query(max_length=64, description="a client address")] = None,
    request_id: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
) -> Page[AuditEventOut]:
    """The audit log, newest first; `ip` is matched by its keyed hash."""
    filters = audit.AuditFilters(
        actor_id=actor,
        action=action,
        resource=resource,
        outcome=outcome,
        ip_hash=audit.hash_ip(runtime, ip) if ip else None,
        request_id=request_id,
        since=_aware(since, "from"),
        until=_aware(until, "to"),
    )
    async with session.begin():
        rows, info = await audit.list_events(session, filters=filters, params=page)
    return make_page([AuditEventOut.model_validate(r) for r in rows], info)


def _period(
    period: str | None, since: date | datetime | None, until: date | datetime | None
) -> tuple[datetime, datetime]:
    def moment(value: date | datetime, field: str) -> datetime:
        if isinstance(value, datetime):
            return _aware(value, field) or value
        return datetime.combine(value, time(), UTC)

    now = utcnow()
    if since is not None or until is not None:
        if period is not None:
            raise _bad_query("period", "give period, or from/to, not both")
        end = moment(until, "to") if until is not None else now
        if isinstance(until, date) and not isinstance(until, datetime):
            end += timedelta(days=1)  # a day given as `to` is included
        start = moment(since, "from") if since is not None else end - timedelta(days=30)
    else:
        days = PERIODS[period or "month"]
        end = now
        start = datetime.combine(now.date() - timedelta(days=days - 1), time(), UTC)
    if end <= start:
        raise _bad_query("to", "must be after from")
    if end - start > timedelta(days=MAX_PERIOD_DAYS):
        raise _bad_query("from", f"a period is at most {MAX_PERIOD_DAYS} days")
    return start, end


@router.get("/analytics/overview", responses=problem_responses(422))
async def analytics_overview(
    _admin: AdminUser,
    runtime: RuntimeDep,
    session: ReadSessionDep,
    period: Annotated[
        Literal["day", "week", "month", "quarter", "year"] | None,
        Query(description="the last 1, 7, 30, 90 or 365 days (UTC), today included"),
    ] = None,
    since: Annotated[date | datetime | None, Query(alias="from")] = None,
    until: Annotated[date | datetime | None, Query(alias="to")] = None,
) -> AnalyticsOverview:
    """Users, creators, live now, streams and hours, tokens bought and tipped, revenue,
    payouts and open reports, over a period and by day."""
    start, end = _period(period, since, until)
    async with session.begin():
        return await analytics.overview(
            session, since=start, until=end, now=utcnow(), currency=runtime.settings.money.currency
        )


@router.get("/announcements")
async def list_announcements(
    _admin: AdminUser, session: ReadSessionDep, page: PageDep
) -> Page[AnnouncementOut]:
    """Every announcement, past, current and future, newest first."""
    async with session.begin():
        rows, info = await announcements.list_all(session, params=page)
    return make_page([AnnouncementOut.model_validate(r) for r in rows], info)


@router.post(
    "/announcements", status_code=status.HTTP_201_CREATED, responses=problem_responses(422)
)
async def create_announcement(
    body: AnnouncementIn, admin: AdminUser, session: SessionDep
) -> AnnouncementOut:
    """Post a banner for everyone (type info, warning or error; optionally from/until)."""
    async with session.begin():
        row = await announcements.create(session, data=body, actor_id=admin.id)
    return AnnouncementOut.model_validate(row)


@router.delete(
    "/announcements/{announcement_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
async def delete_announcement(
    announcement_id: uuid.UUID, _admin: AdminUser, session: SessionDep
) -> Response:
    """Take an announcement down."""
    async with session.begin():
        await announcements.delete(session, announcement_id=announcement_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@public_router.get("/announcements/active")
async def active_announcements(runtime: RuntimeDep, session: ReadSessionDep) -> ActiveAnnouncements:
    """The announcements showing now, and maintenance mode while it is on (the banner)."""
    async with session.begin():
        rows = await announcements.active(session, now=utcnow())
    state = await maintenance.current(runtime)
    return ActiveAnnouncements(
        data=[AnnouncementOut.model_validate(r) for r in rows],
        maintenance=maintenance_out(runtime, state) if state.enabled else None,
    )


def _flag_out(name: str, row: FeatureFlag | None) -> FlagOut:
    flag = flags.FLAGS[name]
    return FlagOut(
        name=name,
        enabled=row.enabled if row is not None else flag.default,
        default=flag.default,
        description=flag.description,
        updated_at=row.updated_at if row is not None else None,
        updated_by_id=row.updated_by_id if row is not None else None,
    )


@router.get("/feature-flags")
async def list_feature_flags(_admin: AdminUser, session: ReadSessionDep) -> FlagsOut:
    """Every feature flag with its value, default and what it gates."""
    async with session.begin():
        stored = await flags.stored_flags(session)
    return FlagsOut(data=[_flag_out(name, stored.get(name)) for name in sorted(flags.FLAGS)])


@router.put("/feature-flags/{name}", responses=problem_responses(404, 422))
async def set_feature_flag(
    name: str, body: FlagIn, admin: AdminUser, runtime: RuntimeDep, session: SessionDep
) -> FlagOut:
    """Turn a feature on or off, on every node."""
    async with session.begin():
        row = await flags.set_flag(session, name=name, enabled=body.enabled, actor_id=admin.id)
    if runtime.switches is not None:
        await runtime.switches.announce_change()
    return _flag_out(name, row)


@router.get("/maintenance")
async def get_maintenance(_admin: AdminUser, runtime: RuntimeDep) -> MaintenanceOut:
    """Whether maintenance mode is on, its message and announced end."""
    return maintenance_out(runtime, await maintenance.current(runtime))


@router.put("/maintenance", responses=problem_responses(422))
async def set_maintenance(
    body: MaintenanceIn, admin: AdminUser, runtime: RuntimeDep, session: SessionDep
) -> MaintenanceOut:
    """Turn maintenance mode on or off, on every node: non-admin API calls answer 503 and no
    new broadcast starts; streams on air continue."""
    if body.ends_at is not None and body.ends_at.tzinfo is None:
        raise ValidationFailed(
            "ends_at needs a time zone",
            errors=[{"field": "ends_at", "in": "body", "message": "needs a time zone",
                     "type": "value_error"}],
        )  # fmt: skip
    async with session.begin():
        row = await maintenance.set_maintenance(
            session,
            enabled=body.enabled,
            message=body.message,
            ends_at=body.ends_at,
            actor_id=admin.id,
        )
    if runtime.switches is not None:
        await runtime.switches.announce_change()
    state = Maintenance(row.enabled, row.message, row.ends_at, row.started_at)
    return maintenance_out(runtime, state)
