"""Reports of content: one model for every kind (`ReportedType`), made here (whichever route
it came by) and consumed by the moderation queue (moderation/queue.py).

A user who reports the same item again while their report is pending adds to that report (its
count grows, the latest reason and details are kept) instead of filing another one. Every
report joins its item's open case (moderation/cases.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.models import User
from stagecast.db.base import utcnow
from stagecast.errors import ValidationFailed
from stagecast.moderation.cases import join_case
from stagecast.moderation.models import Report, ReportedType, ReportReason, ReportStatus
from stagecast.moderation.schemas import ReportOut


class CannotReportOwnContent(ValidationFailed):
    code, title = "CANNOT_REPORT_OWN_CONTENT", "You cannot report your own content"


async def file_report(
    session: AsyncSession,
    *,
    reporter: User,
    content_type: ReportedType,
    content_id: uuid.UUID,
    owner_id: uuid.UUID | None,
    reason: ReportReason,
    details: str | None,
) -> tuple[Report, bool]:
    """Report an item (`owner_id`: whose it is; they cannot report it); returns the report and
    whether it is new (False: merged into the reporter's pending report of the item)."""
    if owner_id == reporter.id:
        raise CannotReportOwnContent
    now = utcnow()
    case_id = await join_case(session, content_type=content_type, content_id=content_id, now=now)
    pending = await _pending(session, reporter.id, content_type, content_id)
    if pending is None:
        report = Report(
            case_id=case_id,
            created_at=now,
            updated_at=now,
            content_type=content_type.value,
            content_id=content_id,
            reporter_id=reporter.id,
            reason=reason.value,
            details=details,
            status=ReportStatus.PENDING.value,
            count=1,
        )
        try:
            async with session.begin_nested():
                session.add(report)
                await session.flush()
        except IntegrityError:
            # The same reporter's twin request won the unique index: merge into its row.
            pending = await _pending(session, reporter.id, content_type, content_id)
            if pending is None:
                raise
        else:
            return report, True
    # One statement, so that concurrent duplicates all count.
    changes: dict[str, Any] = {
        "count": Report.count + 1,
        "reason": reason.value,
        "updated_at": now,
        "case_id": case_id,
    }
    if details:
        changes["details"] = details
    await session.execute(
        update(Report).where(Report.id == pending.id).values(**changes),
        execution_options={"synchronize_session": False},
    )
    await session.refresh(pending)
    return pending, False


async def _pending(
    session: AsyncSession, reporter_id: uuid.UUID, content_type: ReportedType, content_id: uuid.UUID
) -> Report | None:
    return await session.scalar(
        select(Report).where(
            Report.reporter_id == reporter_id,
            Report.content_type == content_type.value,
            Report.content_id == content_id,
            Report.status == ReportStatus.PENDING.value,
        )
    )


def present_report(report: Report) -> ReportOut:
    return ReportOut(
        id=report.id,
        content_type=ReportedType(report.content_type),
        content_id=report.content_id,
        reason=ReportReason(report.reason),
        details=report.details,
        status=ReportStatus(report.status),
        count=report.count,
        created_at=report.created_at,
        updated_at=report.updated_at,
    )
