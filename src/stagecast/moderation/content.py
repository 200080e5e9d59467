"""What a report or flag is about, per content type: whose it is (they cannot report it, and
a decision's account action falls on them) and how the queue shows it."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from stagecast.accounts.models import User, UserStatus
from stagecast.channels.models import Channel
from stagecast.chat.models import ChatMessage
from stagecast.clips.models import Clip
from stagecast.moderation.models import ReportedType
from stagecast.moderation.schemas import PersonRef, QueueContent
from stagecast.streams.models import Stream
from stagecast.vods.models import Vod

Key = tuple[ReportedType, uuid.UUID]


@dataclass(slots=True)
class Subject:
    """A reported object as it is now; `row` is its table's row (None: it is gone)."""

    content_type: ReportedType
    content_id: uuid.UUID
    row: Any = None
    owner: User | None = None
    channel: Channel | None = None
    title: str | None = None
    text: str | None = None
    url: str | None = None
    hidden: bool = False  # a deleted chat message, a suspended or banned account

    @property
    def exists(self) -> bool:
        return self.row is not None

    @property
    def owner_id(self) -> uuid.UUID | None:
        return self.owner.id if self.owner is not None else None

    def shown(self, *, removed_by_decision: bool) -> QueueContent:
        author = self.owner
        return QueueContent(
            exists=self.exists,
            removed=self.hidden or removed_by_decision,
            title=self.title,
            text=self.text,
            author=PersonRef(id=author.id, username=author.username) if author else None,
            channel_id=self.channel.id if self.channel is not None else None,
            url=self.url,
        )


def _channel_path(channel: Channel) -> str:
    return f"/{channel.slug}"


async def _users(session: AsyncSession, ids: set[uuid.UUID], found: dict[Key, Subject]) -> None:
    for user in await session.scalars(select(User).where(User.id.in_(ids))):
        subject = found[(ReportedType.USER, user.id)]
        subject.row = subject.owner = user
        subject.title, subject.text = user.display_name, user.bio
        subject.hidden = user.status != UserStatus.ACTIVE.value


async def _channels(session: AsyncSession, ids: set[uuid.UUID], found: dict[Key, Subject]) -> None:
    owner = aliased(User)
    channel_rows = await session.execute(
        select(Channel, owner).join(owner, owner.id == Channel.owner_id).where(Channel.id.in_(ids))
    )
    for channel, user in channel_rows:
        subject = found[(ReportedType.CHANNEL, channel.id)]
        subject.row, subject.owner, subject.channel = channel, user, channel
        subject.title, subject.text = channel.name, channel.description
        subject.url = _channel_path(channel)


async def _streams(session: AsyncSession, ids: set[uuid.UUID], found: dict[Key, Subject]) -> None:
    owner = aliased(User)
    stream_rows = await session.execute(
        select(Stream, Channel, owner)
        .join(Channel, Channel.id == Stream.channel_id)
        .join(owner, owner.id == Channel.owner_id)
        .where(Stream.id.in_(ids))
    )
    for stream, channel, user in stream_rows:
        subject = found[(ReportedType.STREAM, stream.id)]
        subject.row, subject.owner, subject.channel = stream, user, channel
        subject.title, subject.text = stream.title, stream.description
        subject.url = _channel_path(channel)


async def _vods(session: AsyncSession, ids: set[uuid.UUID], found: dict[Key, Subject]) -> None:
    owner = aliased(User)
    vod_rows = await session.execute(
        select(Vod, Channel, owner)
        .join(Channel, Channel.id == Vod.channel_id)
        .join(owner, owner.id == Channel.owner_id)
        .where(Vod.id.in_(ids))
    )
    for vod, channel, user in vod_rows:
        subject = found[(ReportedType.VOD, vod.id)]
        subject.row, subject.owner, subject.channel = vod, user, channel
        subject.title, subject.url = vod.title, f"/vods/{vod.id}"


async def _clips(session: AsyncSession, ids: set[uuid.UUID], found: dict[Key, Subject]) -> None:
    owner = aliased(User)
    streamer = aliased(User)
    clip_rows = await session.execute(
        select(Clip, Channel, owner, streamer)
        .join(Channel, Channel.id == Clip.channel_id)
        .join(streamer, streamer.id == Channel.owner_id)
        .outerjoin(owner, owner.id == Clip.creator_id)
        .where(Clip.id.in_(ids))
    )
    for clip, channel, clipper, channel_owner in clip_rows:
        subject = found[(ReportedType.CLIP, clip.id)]
        # The clipper made it; a clip whose clipper is gone is the channel's.
        subject.row, subject.owner = clip, clipper or channel_owner
        subject.channel, subject.title, subject.url = (
            channel,
            clip.title,
            f"/clips/{clip.id}",
        )


async def _messages(session: AsyncSession, ids: set[uuid.UUID], found: dict[Key, Subject]) -> None:
    owner = aliased(User)
    message_rows = await session.execute(
        select(ChatMessage, Channel, owner)
        .join(Channel, Channel.id == ChatMessage.channel_id)
        .join(owner, owner.id == ChatMessage.user_id)
        .where(ChatMessage.id.in_(ids))
    )
    for message, channel, user in message_rows:
        subject = found[(ReportedType.CHAT_MESSAGE, message.id)]
        subject.row, subject.owner, subject.channel = message, user, channel
        subject.text, subject.url = message.body, _channel_path(channel)
        subject.hidden = message.deleted_at is not None


_LOADERS = {
    ReportedType.USER: _users,
    ReportedType.CHANNEL: _channels,
    ReportedType.STREAM: _streams,
    ReportedType.VOD: _vods,
    ReportedType.CLIP: _clips,
    ReportedType.CHAT_MESSAGE: _messages,
}


async def load_subjects(session: AsyncSession, keys: Iterable[Key]) -> dict[Key, Subject]:
    """The subjects of many reports at once: one statement per content type present."""
    by_type: dict[ReportedType, set[uuid.UUID]] = defaultdict(set)
    for content_type, content_id in keys:
        by_type[content_type].add(content_id)
    found: dict[Key, Subject] = {(t, i): Subject(t, i) for t, ids in by_type.items() for i in ids}
    for content_type, ids in by_type.items():
        await _LOADERS[content_type](session, ids, found)
    return found


async def load_subject(
    session: AsyncSession, content_type: ReportedType, content_id: uuid.UUID
) -> Subject:
    return (await load_subjects(session, [(content_type, content_id)]))[(content_type, content_id)]
