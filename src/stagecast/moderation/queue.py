"""The moderation queue: reports and flags grouped per object into cases, listed for staff,
and decided. Approving keeps the content; rejecting removes or hides it for real (through its
own domain's service) and may suspend or ban its owner. Reporters are told the outcome, owners
what was done to their content.

A decision's database changes commit with it; what must wait for the commit (media files
deleted, a live stream ended) is handed back as an `Aftermath` for the edge to carry out.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Select, delete, distinct, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts import service as accounts
from stagecast.accounts.models import Role, User, UserStatus
from stagecast.channels.models import Channel
from stagecast.chat import service as chat
from stagecast.chat.models import ChatMessage
from stagecast.clips import service as clips
from stagecast.clips.models import Clip
from stagecast.db.base import utcnow
from stagecast.errors import Conflict, NotFound, PermissionDenied
from stagecast.moderation import reports
from stagecast.moderation.cases import announce_case, join_case
from stagecast.moderation.content import Subject, load_subject, load_subjects
from stagecast.moderation.models import (
    CaseStatus,
    FlagKind,
    ModerationCase,
    ModerationFlag,
    Report,
    ReportedType,
    ReportReason,
    ReportStatus,
    Resolution,
)
from stagecast.moderation.schemas import (
    AdminReportOut,
    ContentReportIn,
    FlagOut,
    PersonRef,
    QueueItem,
    QueueReport,
)
from stagecast.notifications import service as notifications
from stagecast.pagination import PageInfo, PageParams, SortKey, paginate, paginate_rows
from stagecast.streams.models import Stream, StreamKey, StreamStatus
from stagecast.vods import service as vods
from stagecast.vods.models import Vod
from stagecast.vods.service import VodMediaHook

if TYPE_CHECKING:
    from stagecast.runtime import Runtime

LATEST_REPORTS = 5
# Notification kinds.
REPORT_OUTCOME = "report_outcome"
CONTENT_REMOVED = "content_removed"
WARNING = "warning"

QueueStatus = Literal["open", "approved", "rejected", "all"]
QueueSource = Literal["reports", "flags", "all"]
RejectAction = Literal["remove", "suspend", "ban"]
ResolveAction = Literal["resolve", "dismiss", "ban", "warn"]


class ReportedContentNotFound(NotFound):
    code, title = "REPORTED_CONTENT_NOT_FOUND", "The reported content does not exist"


class CaseNotFound(NotFound):
    code, title = "CASE_NOT_FOUND", "No such case in the moderation queue"


class ReportNotFound(NotFound):
    code, title = "REPORT_NOT_FOUND", "Report not found"


class AlreadyDecided(Conflict):
    code, title = "ALREADY_DECIDED", "This has already been decided"


@dataclass
class Aftermath:
    """What a decision leaves to do once it has committed."""

    vod_prefixes: list[str] = field(default_factory=list)
    clip_ids: list[uuid.UUID] = field(default_factory=list)
    streams_to_forget: list[uuid.UUID] = field(default_factory=list)
    streams_to_end: list[uuid.UUID] = field(default_factory=list)


# --- reporting ---


async def report_content(
    session: AsyncSession, *, reporter: User, data: ContentReportIn
) -> tuple[Report, bool]:
    """File a report of anything (`POST /reports`, `/moderation/report`), as the VOD route
    does: the same function behind both (reports.file_report)."""
    subject = await load_subject(session, data.content_type, data.content_id)
    if not subject.exists or _gone(subject):
        raise ReportedContentNotFound(f"No {data.content_type.value} {data.content_id}")
    if data.content_type is ReportedType.VOD:
        # What its reporter may not watch, they cannot have seen (private ones are 404).
        await vods.ensure_watchable(session, subject.row, reporter)
    return await reports.file_report(
        session,
        reporter=reporter,
        content_type=data.content_type,
        content_id=data.content_id,
        owner_id=subject.owner_id,
        reason=data.reason,
        details=data.details,
    )


def _gone(subject: Subject) -> bool:
    """Deleted chat messages and erased accounts cannot be reported any more."""
    if subject.content_type is ReportedType.CHAT_MESSAGE:
        return subject.hidden
    if subject.content_type is ReportedType.USER:
        return bool(subject.row.status == UserStatus.DELETED.value)
    return False


# --- the queue ---


def _queue_query(
    *,
    status: QueueStatus,
    content_type: ReportedType | None,
    reason: ReportReason | None,
    source: QueueSource,
) -> Select[ModerationCase]:
    query = select(ModerationCase)
    if status != "all":
        query = query.where(ModerationCase.status == status)
    if content_type is not None:
        query = query.where(ModerationCase.content_type == content_type.value)
    if source == "reports":
        query = query.where(exists().where(Report.case_id == ModerationCase.id))
    elif source == "flags":
        query = query.where(exists().where(ModerationFlag.case_id == ModerationCase.id))
    if reason is not None:
        query = query.where(
            exists().where(Report.case_id == ModerationCase.id, Report.reason == reason.value)
        )
    return query


async def list_queue(
    session: AsyncSession,
    *,
    status: QueueStatus,
    content_type: ReportedType | None,
    reason: ReportReason | None,
    source: QueueSource,
    params: PageParams,
) -> tuple[list[QueueItem], PageInfo]:
    """Cases, oldest first (ids are time-ordered), with their reports and flags grouped."""
    query = _queue_query(status=status, content_type=content_type, reason=reason, source=source)
    cases, info = await paginate(
        session,
        query,
        keys=[SortKey(ModerationCase.id, lambda c: c.id, descending=False)],
        params=params,
    )
    return await present_cases(session, cases), info


async def get_case(session: AsyncSession, case_id: uuid.UUID) -> ModerationCase:
    case = await session.get(ModerationCase, case_id)
    if case is None:
        raise CaseNotFound()
    return case


async def get_item(session: AsyncSession, case_id: uuid.UUID) -> QueueItem:
    return (await present_cases(session, [await get_case(session, case_id)]))[0]


def _person(user: User | None) -> PersonRef | None:
    return PersonRef(id=user.id, username=user.username) if user is not None else None


async def present_cases(session: AsyncSession, cases: list[ModerationCase]) -> list[QueueItem]:
    """Queue items of cases, in a handful of statements whatever their number."""
    if not cases:
        return []
    ids = [c.id for c in cases]
    reasons: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    for case_id, reason, total in await session.execute(
        select(Report.case_id, Report.reason, func.sum(Report.count))
        .where(Report.case_id.in_(ids))
        .group_by(Report.case_id, Report.reason)
    ):
        if case_id is not None:
            reasons[case_id][reason] = int(total or 0)
    reporters: dict[uuid.UUID, int] = {}
    for case_id, n in await session.execute(
        select(Report.case_id, func.count(distinct(Report.reporter_id)))
        .where(Report.case_id.in_(ids))
        .group_by(Report.case_id)
    ):
        if case_id is not None:
            reporters[case_id] = int(n)
    flag_counts: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    for case_id, kind, n in await session.execute(
        select(ModerationFlag.case_id, ModerationFlag.kind, func.count())
        .where(ModerationFlag.case_id.in_(ids))
        .group_by(ModerationFlag.case_id, ModerationFlag.kind)
    ):
        if case_id is not None:
            flag_counts[case_id][kind] = int(n)
    # The latest few reports of each case, ranked in the database (SQLite and PostgreSQL both
    # have window functions).
    rank = (
        func.row_number().over(partition_by=Report.case_id, order_by=Report.id.desc()).label("rank")
    )
    ranked = select(Report.id, rank).where(Report.case_id.in_(ids)).subquery()
    latest: dict[uuid.UUID, list[QueueReport]] = defaultdict(list)
    for report, reporter in await session.execute(
        select(Report, User)
        .join(ranked, ranked.c.id == Report.id)
        .outerjoin(User, User.id == Report.reporter_id)
        .where(ranked.c.rank <= LATEST_REPORTS)
        .order_by(Report.id.desc())
    ):
        if report.case_id is not None:
            shown = reports.present_report(report).model_dump()
            latest[report.case_id].append(QueueReport(**shown, reporter=_person(reporter)))
    subjects = await load_subjects(
        session, [(ReportedType(c.content_type), c.content_id) for c in cases]
    )
    items = []
    for case in cases:
        subject = subjects[(ReportedType(case.content_type), case.content_id)]
        kinds = flag_counts.get(case.id, {})
        items.append(
            QueueItem(
                id=case.id,
                content_type=ReportedType(case.content_type),
                content_id=case.content_id,
                status=CaseStatus(case.status),
                report_count=sum(reasons.get(case.id, {}).values()),
                reporter_count=reporters.get(case.id, 0),
                reasons=reasons.get(case.id, {}),
                flag_count=sum(kinds.values()),
                flag_kinds=sorted(FlagKind(k) for k in kinds),
                first_reported_at=case.first_reported_at,
                last_reported_at=case.last_reported_at,
                decided_at=case.decided_at,
                decided_by=case.decided_by,
                decision_note=case.decision_note,
                decision_action=Resolution(case.decision_action) if case.decision_action else None,
                content=subject.shown(removed_by_decision=case.status == CaseStatus.REJECTED.value),
                reports=latest.get(case.id, []),
            )
        )
    return items


# --- decisions ---


async def _claim(
    session: AsyncSession,
    case: ModerationCase,
    *,
    status: CaseStatus,
    action: Resolution,
    actor: User,
    note: str | None,
    now: datetime,
) -> None:
    """Close the case, once: a second decision (even a concurrent one) is a conflict."""
    claimed = await session.execute(
        update(ModerationCase)
        .where(ModerationCase.id == case.id, ModerationCase.status == CaseStatus.OPEN.value)
        .values(
            status=status.value,
            decided_at=now,
            decided_by=actor.id,
            decision_note=note,
            decision_action=action.value,
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise AlreadyDecided(f"This case was already decided ({case.status})")
    await session.refresh(case)


def _ensure_outranks(actor: User, target: User) -> None:
    if target.id == actor.id:
        raise PermissionDenied("You cannot suspend or ban your own account")
    if target.role_enum.rank >= actor.role_enum.rank and actor.role_enum is not Role.ADMIN:
        raise PermissionDenied("Only an admin can suspend or ban staff")
    if target.role_enum is Role.ADMIN:
        raise PermissionDenied("Admins cannot be suspended or banned from the queue")


async def _restrict_account(
    session: AsyncSession, *, actor: User, target: User, status: UserStatus
) -> None:
    """Suspend or ban an account: it signs out everywhere, and its sockets close on every
    node once this commits (accounts' revocation event)."""
    _ensure_outranks(actor, target)
    target.status = status.value
    await accounts.end_all_sessions(session, user_id=target.id, reason=status.value)
    await session.flush()


async def _end_live(session: AsyncSession, channel_id: uuid.UUID, after: Aftermath) -> None:
    live = await session.scalars(
        select(Stream.id).where(
            Stream.channel_id == channel_id, Stream.status == StreamStatus.LIVE.value
        )
    )
    after.streams_to_end.extend(live)


async def _remove_content(
    session: AsyncSession,
    subject: Subject,
    *,
    actor: User,
    store: Any,
    hooks: list[VodMediaHook],
    after: Aftermath,
) -> None:
    """Remove or hide the content for real, through its own domain."""
    row = subject.row
    match row:
        case None:
            return  # already deleted by its owner
        case Vod():
            stream_id = row.stream_id
            after.vod_prefixes.append(
                await vods.remove_vod(session, vod=row, store=store, hooks=hooks)
            )
            after.streams_to_forget.append(stream_id)
        case Clip():
            await clips.delete_clip(session, actor=actor, clip=row)
            after.clip_ids.append(row.id)
        case ChatMessage():
            if row.deleted_at is None:
                # The room is told (`chat:deleted`): it disappears from every viewer's chat.
                await chat.delete_message(session, actor=actor, message_id=row.id)
        case Stream():
            if row.status == StreamStatus.LIVE.value:
                after.streams_to_end.append(row.id)
        case Channel():
            # The channel goes off the air and loses its stream keys: nobody publishes to it
            # until its owner makes a new key (an account action stops that too).
            await _end_live(session, row.id, after)
            await session.execute(delete(StreamKey).where(StreamKey.channel_id == row.id))
        case User():
            if row.status == UserStatus.ACTIVE.value:
                await _restrict_account(
                    session, actor=actor, target=row, status=UserStatus.SUSPENDED
                )


async def _pending_reports(session: AsyncSession, case_id: uuid.UUID) -> list[Report]:
    return list(
        await session.scalars(
            select(Report)
            .where(Report.case_id == case_id, Report.status == ReportStatus.PENDING.value)
            .order_by(Report.id)
        )
    )


async def decide(
    session: AsyncSession,
    *,
    actor: User,
    case: ModerationCase,
    action: Resolution,
    note: str | None,
    store: Any,
    hooks: list[VodMediaHook],
) -> Aftermath:
    """Decide an open case: `dismissed` or `warned` keep the content (approved), `removed`,
    `suspended` and `banned` remove it (rejected) and the last two restrict its owner."""
    now = utcnow()
    rejected = action in (Resolution.REMOVED, Resolution.SUSPENDED, Resolution.BANNED)
    status = CaseStatus.REJECTED if rejected else CaseStatus.APPROVED
    content_type = ReportedType(case.content_type)
    subject = await load_subject(session, content_type, case.content_id)
    owner = subject.owner
    restricts = action in (Resolution.SUSPENDED, Resolution.BANNED) or (
        rejected and content_type is ReportedType.USER
    )
    if restricts and owner is not None:
        _ensure_outranks(actor, owner)  # before anything changes
    await _claim(session, case, status=status, action=action, actor=actor, note=note, now=now)
    after = Aftermath()
    if rejected:
        await _remove_content(session, subject, actor=actor, store=store, hooks=hooks, after=after)
    if owner is not None and action in (Resolution.SUSPENDED, Resolution.BANNED):
        restricted = UserStatus.SUSPENDED if action is Resolution.SUSPENDED else UserStatus.BANNED
        if owner.status != restricted.value:
            await _restrict_account(session, actor=actor, target=owner, status=restricted)
    pending = await _pending_reports(session, case.id)
    if pending:
        await session.execute(
            update(Report)
            .where(Report.id.in_([r.id for r in pending]))
            .values(
                status=(
                    ReportStatus.DISMISSED if action is Resolution.DISMISSED
                    else ReportStatus.RESOLVED
                ).value,
                resolution=action.value,
                resolved_at=now,
                resolved_by=actor.id,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )  # fmt: skip
    about = {
        "case_id": str(case.id),
        "content_type": content_type.value,
        "content_id": str(case.content_id),
    }
    told: set[uuid.UUID] = set()
    for report in pending:
        if report.reporter_id is None or report.reporter_id in told:
            continue
        told.add(report.reporter_id)
        await notifications.notify(
            session,
            user_id=report.reporter_id,
            kind=REPORT_OUTCOME,
            payload={
                **about,
                "report_id": str(report.id),
                "outcome": action.value,
                "action_taken": action is not Resolution.DISMISSED,
            },
        )
    if owner is not None and owner.status != UserStatus.DELETED.value:
        if action is Resolution.WARNED:
            await notifications.notify(
                session, user_id=owner.id, kind=WARNING, payload={**about, "note": note}
            )
        elif rejected:
            await notifications.notify(
                session,
                user_id=owner.id,
                kind=CONTENT_REMOVED,
                payload={**about, "action": action.value, "note": note},
            )
    announce_case(
        session,
        case_id=case.id,
        content_type=content_type,
        content_id=case.content_id,
        status=status,
        change="decided",
    )
    await session.flush()
    return after


async def carry_out(runtime: Runtime, after: Aftermath) -> None:
    """What a decision left for after its commit: media files, live streams."""
    media = runtime.media
    if media is None:
        return
    for stream_id in after.streams_to_forget:
        media.forget_open_media(stream_id)
    for prefix in after.vod_prefixes:
        await vods.remove_media(media.store, prefix)
    for clip_id in after.clip_ids:
        await media.store.delete_prefix(f"{clips.clip_prefix(clip_id)}/")
    for stream_id in after.streams_to_end:
        await media.end_stream(stream_id, reason="removed by moderation")


def rejection(action: RejectAction) -> Resolution:
    return {
        "remove": Resolution.REMOVED,
        "suspend": Resolution.SUSPENDED,
        "ban": Resolution.BANNED,
    }[action]


# --- seed 003's reports list ---


def present_admin_report(report: Report, reporter: User | None) -> AdminReportOut:
    return AdminReportOut(
        **reports.present_report(report).model_dump(),
        reporter=_person(reporter),
        case_id=report.case_id,
        resolution=Resolution(report.resolution) if report.resolution else None,
        resolved_by=report.resolved_by,
        resolved_at=report.resolved_at,
    )


async def list_reports(
    session: AsyncSession,
    *,
    status: Literal["pending", "resolved", "dismissed", "all"],
    params: PageParams,
) -> tuple[list[AdminReportOut], PageInfo]:
    """Reports one by one, newest first, counted (seed 003 pages by offset)."""
    query = select(Report, User).outerjoin(User, User.id == Report.reporter_id)
    if status != "all":
        query = query.where(Report.status == status)
    rows, info = await paginate_rows(
        session, query, keys=[SortKey(Report.id, lambda r: r[0].id)], params=params
    )
    return [present_admin_report(report, reporter) for report, reporter in rows], info


async def get_admin_report(session: AsyncSession, report_id: uuid.UUID) -> AdminReportOut:
    row = (
        await session.execute(
            select(Report, User)
            .outerjoin(User, User.id == Report.reporter_id)
            .where(Report.id == report_id)
        )
    ).one_or_none()
    if row is None:
        raise ReportNotFound()
    return present_admin_report(row[0], row[1])


RESOLUTIONS: dict[str, Resolution] = {
    "resolve": Resolution.REMOVED,
    "dismiss": Resolution.DISMISSED,
    "ban": Resolution.BANNED,
    "warn": Resolution.WARNED,
}


async def resolve_report(
    session: AsyncSession,
    *,
    actor: User,
    report_id: uuid.UUID,
    action: ResolveAction,
    note: str | None,
    store: Any,
    hooks: list[VodMediaHook],
) -> Aftermath:
    """Seed 003's resolution of one report: it decides the report's case (every report of
    the object with it), as the queue would."""
    report = await session.get(Report, report_id)
    if report is None:
        raise ReportNotFound()
    if report.status != ReportStatus.PENDING.value:
        raise AlreadyDecided(f"This report was already {report.status}")
    if report.case_id is None:  # filed before the queue existed
        report.case_id = await join_case(
            session,
            content_type=ReportedType(report.content_type),
            content_id=report.content_id,
            now=utcnow(),
        )
        await session.flush()
    case = await get_case(session, report.case_id)
    return await decide(
        session,
        actor=actor,
        case=case,
        action=RESOLUTIONS[action],
        note=note,
        store=store,
        hooks=hooks,
    )


# --- automatic flags ---


async def list_flags(
    session: AsyncSession,
    *,
    kind: FlagKind | None,
    channel_id: uuid.UUID | None,
    since: datetime | None,
    params: PageParams,
) -> tuple[list[FlagOut], PageInfo]:
    """Flags, newest first."""
    query = select(ModerationFlag, User).outerjoin(User, User.id == ModerationFlag.user_id)
    if kind is not None:
        query = query.where(ModerationFlag.kind == kind.value)
    if channel_id is not None:
        query = query.where(ModerationFlag.channel_id == channel_id)
    if since is not None:
        query = query.where(ModerationFlag.created_at >= since)
    rows, info = await paginate_rows(
        session, query, keys=[SortKey(ModerationFlag.id, lambda r: r[0].id)], params=params
    )
    return [
        FlagOut(
            id=flag.id,
            kind=FlagKind(flag.kind),
            content_type=ReportedType(flag.content_type),
            content_id=flag.content_id,
            channel_id=flag.channel_id,
            user=_person(user),
            evidence=flag.evidence,
            case_id=flag.case_id,
            created_at=flag.created_at,
        )
        for flag, user in rows
    ], info
