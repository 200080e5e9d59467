"""The moderation queue's cases: every report and flag of an object joins its one open case."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.moderation.models import CaseStatus, ModerationCase, ReportedType


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
            return case.id
    await session.execute(
        update(ModerationCase)
        .where(ModerationCase.id == case_id, ModerationCase.last_reported_at < now)
        .values(last_reported_at=now),
        execution_options={"synchronize_session": False},
    )
    return case_id
