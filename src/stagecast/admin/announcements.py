"""Announcements: banners an admin posts for everyone, optionally between two times."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.admin.models import Announcement
from stagecast.admin.schemas import AnnouncementIn
from stagecast.errors import NotFound
from stagecast.pagination import PageInfo, PageParams, by_id, paginate

MAX_ACTIVE = 20  # banners shown at once; more would bury the page


class AnnouncementNotFound(NotFound):
    code, title = "ANNOUNCEMENT_NOT_FOUND", "No such announcement"


async def create(
    session: AsyncSession, *, data: AnnouncementIn, actor_id: uuid.UUID
) -> Announcement:
    announcement = Announcement(
        title=data.title,
        content=data.content,
        type=data.type,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        created_by_id=actor_id,
    )
    session.add(announcement)
    await session.flush()
    return announcement


async def list_all(
    session: AsyncSession, *, params: PageParams
) -> tuple[list[Announcement], PageInfo]:
    """Every announcement, past and future ones too, newest first."""
    return await paginate(session, select(Announcement), keys=by_id(Announcement.id), params=params)


async def active(session: AsyncSession, *, now: datetime) -> list[Announcement]:
    """Those showing now (started or without a start, not ended), newest first."""
    query = (
        select(Announcement)
        .where(or_(Announcement.starts_at.is_(None), Announcement.starts_at <= now))
        .where(or_(Announcement.ends_at.is_(None), Announcement.ends_at > now))
        .order_by(Announcement.id.desc())
        .limit(MAX_ACTIVE)
    )
    return list(await session.scalars(query))


async def delete(session: AsyncSession, *, announcement_id: uuid.UUID) -> None:
    announcement = await session.get(Announcement, announcement_id)
    if announcement is None:
        raise AnnouncementNotFound()
    await session.delete(announcement)
    await session.flush()
