"""HTTP routes of notifications."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from stagecast.accounts.deps import CurrentUser
from stagecast.deps import PageDep, SessionDep
from stagecast.errors import problem_responses
from stagecast.notifications import service as notifications
from stagecast.notifications.schemas import MarkedRead, NotificationOut, UnreadCount
from stagecast.pagination import Page, make_page

router = APIRouter(
    prefix="/notifications", tags=["notifications"], responses=problem_responses(401)
)


@router.get("")
async def list_notifications(
    user: CurrentUser, session: SessionDep, page: PageDep, unread: bool = False
) -> Page[NotificationOut]:
    """Your notifications, newest first (`?unread=true` for unread ones only)."""
    async with session.begin():
        rows, cursor = await notifications.list_notifications(
            session, user_id=user.id, params=page, unread_only=unread
        )
    return make_page([NotificationOut.model_validate(r) for r in rows], cursor)


@router.get("/unread-count")
async def unread_count(user: CurrentUser, session: SessionDep) -> UnreadCount:
    """How many notifications are unread."""
    async with session.begin():
        return UnreadCount(unread=await notifications.unread_count(session, user_id=user.id))


@router.post("/{notification_id}/read", responses=problem_responses(404))
async def mark_read(
    notification_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> NotificationOut:
    """Mark one notification read."""
    async with session.begin():
        notification = await notifications.mark_read(
            session, user_id=user.id, notification_id=notification_id
        )
    return NotificationOut.model_validate(notification)


@router.post("/read-all")
async def mark_all_read(user: CurrentUser, session: SessionDep) -> MarkedRead:
    """Mark every notification read."""
    async with session.begin():
        return MarkedRead(marked=await notifications.mark_all_read(session, user_id=user.id))
