"""The moderation queue's cases: every report and flag of an object joins its one open case."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.moderation.models import CaseStatus, ModerationCase, ReportedType
from stagecast.realtime.bus import STAFF_ROOM, publish

CASE_UPDATED = "moderation:case_updated"


def announce_case(
    session: AsyncSession,
    *,
    case_id: uuid.UUID,
    content_type: ReportedType,
    content_id: uuid.UUID,
    status: CaseStatus,
    change: str,
) -> None:
    """Tell staff's open sockets (the admin console) that a queue item changed, once this
    commits: `change` is `reported` (a report or flag joined it) or `decided`."""
    publish(
        session,
        CASE_UPDATED,
        {
            "case_id": str(case_id),
            "content_type": content_type.value,
            "content_id": str(content_id),
            "status": status.value,
            "change": change,
        },
        rooms=(STAFF_ROOM,),
    )


async def _open_case(
    session: AsyncSession, content_type: ReportedType, content_id: uuid.UUID
) -> uuid.UUID | None:
    return await session.scalar(
        select(ModerationCase.id).where(
            ModerationCase.content_type == content_type.value,
            ModerationCase.content_id == content_id,
            ModerationCase.status == CaseStatus.OPEN.value,
        )
    )


async def join_case(
    session: AsyncSession, *, content_type: ReportedType, content_id: uuid.UUID, now: datetime
) -> uuid.UUID:
    """The id of the object's open case, opened now if it has none; its latest activity is
    now. Safe when the first reports arrive at once: the partial unique index lets one open
    case in, and the others join it."""
    case_id = await _open_case(session, content_type, content_id)
    if case_id is None:
        case = ModerationCase(
            content_type=content_type.value,
            content_id=content_id,
            status=CaseStatus.OPEN.value,
            first_reported_at=now,
            last_reported_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(case)
                await session.flush()
        except IntegrityError:
            # A concurrent report opened it first (on PostgreSQL we waited for its commit).
            case_id = await _open_case(session, content_type, content_id)
            if case_id is None:
                raise
        else:
            _reported(session, case.id, content_type, content_id)
            return case.id
    await session.execute(
        update(ModerationCase)
        .where(ModerationCase.id == case_id, ModerationCase.last_reported_at < now)
        .values(last_reported_at=now),
        execution_options={"synchronize_session": False},
    )
    _reported(session, case_id, content_type, content_id)
    return case_id


def _reported(
    session: AsyncSession, case_id: uuid.UUID, content_type: ReportedType, content_id: uuid.UUID
) -> None:
    announce_case(
        session,
        case_id=case_id,
        content_type=content_type,
        content_id=content_id,
        status=CaseStatus.OPEN,
        change="reported",
    )
