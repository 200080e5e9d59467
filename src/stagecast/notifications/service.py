"""In-app notifications: written when something happens, read and marked by their user."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.channels.models import Channel, ChannelFollow
from stagecast.db.base import new_id, utcnow
from stagecast.errors import NotFound
from stagecast.notifications.models import Notification
from stagecast.pagination import PageInfo, PageParams, by_id, paginate
from stagecast.realtime.bus import publish, user_room

STREAM_LIVE = "stream.live"
BATCH = 1000


async def notify_followers_live(
    session: AsyncSession, *, channel: Channel, stream_id: uuid.UUID, title: str
) -> int:
    """Tell every follower of a channel that it went live; returns how many were told."""
    follower_ids = list(
        await session.scalars(
            select(ChannelFollow.user_id).where(ChannelFollow.channel_id == channel.id)
        )
    )
    payload = {
        "channel_id": str(channel.id),
        "channel_slug": channel.slug,
        "channel_name": channel.name,
        "stream_id": str(stream_id),
        "title": title,
    }
    now = utcnow()
    for start in range(0, len(follower_ids), BATCH):
        batch = [(new_id(), user_id) for user_id in follower_ids[start : start + BATCH]]
        await session.execute(
            insert(Notification),
            [
                {
                    "id": note_id,
                    "user_id": user_id,
                    "kind": STREAM_LIVE,
                    "payload": payload,
                    "created_at": now,
                }
                for note_id, user_id in batch
            ],
        )
        for note_id, user_id in batch:
            # Delivered live to each follower's own room (their open tabs), after commit.
            publish(
                session,
                "notification:new",
                {
                    "id": str(note_id),
                    "kind": STREAM_LIVE,
                    "payload": payload,
                    "created_at": now.isoformat(),
                },
                rooms=(user_room(user_id),),
            )
    return len(follower_ids)


async def notify(
    session: AsyncSession, *, user_id: uuid.UUID, kind: str, payload: dict[str, Any]
) -> Notification:
    """One notification for one user, delivered live to their room after commit."""
    note = Notification(user_id=user_id, kind=kind, payload=payload)
    session.add(note)
    await session.flush()
    publish(
        session,
        "notification:new",
        {
            "id": str(note.id),
            "kind": kind,
            "payload": payload,
            "created_at": note.created_at.isoformat(),
        },
        rooms=(user_room(user_id),),
    )
    return note


async def list_notifications(
    session: AsyncSession, *, user_id: uuid.UUID, params: PageParams, unread_only: bool
) -> tuple[list[Notification], PageInfo]:
    query = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return await paginate(session, query, keys=by_id(Notification.id), params=params)


async def unread_count(session: AsyncSession, *, user_id: uuid.UUID) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        )
        or 0
    )


async def mark_read(
    session: AsyncSession, *, user_id: uuid.UUID, notification_id: uuid.UUID
) -> Notification:
    notification = await session.get(Notification, notification_id)
    if notification is None or notification.user_id != user_id:
        raise NotFound("No such notification")
    if notification.read_at is None:
        notification.read_at = utcnow()
        await session.flush()
    return notification


async def mark_all_read(session: AsyncSession, *, user_id: uuid.UUID) -> int:
    result = await session.execute(
        update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
