"""Chat: sending (checked against bans and modes), deleting, clearing, history."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.models import User
from stagecast.channels.models import Channel
from stagecast.chat.emotes import EMOTES
from stagecast.chat.models import ChatMessage
from stagecast.chat.schemas import ChatAuthor, ChatMessageOut, Fragment
from stagecast.db.base import utcnow
from stagecast.errors import NotFound, PermissionDenied, ValidationFailed
from stagecast.moderation import service as moderation
from stagecast.moderation.service import ChannelRole
from stagecast.money import subscriptions
from stagecast.pagination import PageInfo, PageParams, SortKey, paginate_rows
from stagecast.realtime.bus import channel_room, publish

MAX_MESSAGE_CHARS = 500
_LINK = re.compile(r"^https?://[^\s<>\"']+$", re.IGNORECASE)
_MENTION = re.compile(r"^@([A-Za-z0-9_]{3,25})[.,!?:;]?$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


class MessageNotFound(NotFound):
    code, title = "MESSAGE_NOT_FOUND", "Message not found"


class MessageTooLong(ValidationFailed):
    code, title = "MESSAGE_TOO_LONG", "The message is too long"


def clean_message(raw: str) -> str:
    """Trim, fold whitespace and drop control and direction-override characters."""
    text = _CONTROL.sub("", raw.replace("\r", " ").replace("\n", " ").replace("\t", " "))
    text = re.sub(r" {2,}", " ", text).strip()
    if not text:
        raise ValidationFailed("The message is empty")
    if len(text) > MAX_MESSAGE_CHARS:
        raise MessageTooLong(f"Messages are at most {MAX_MESSAGE_CHARS} characters")
    return text


def fragments_of(body: str) -> list[Fragment]:
    """Split a message into text, links, mentions and emotes (clients render each safely)."""
    pieces: list[Fragment] = []

    def add_text(text: str) -> None:
        if pieces and pieces[-1].type == "text":
            pieces[-1] = Fragment(type="text", text=pieces[-1].text + text)
        else:
            pieces.append(Fragment(type="text", text=text))

    for index, word in enumerate(body.split(" ")):
        if index:
            add_text(" ")
        if word in EMOTES:
            pieces.append(Fragment(type="emote", text=word, emote=word))
        elif _LINK.match(word):
            pieces.append(Fragment(type="link", text=word, url=word))
        elif match := _MENTION.match(word):
            pieces.append(Fragment(type="mention", text=word, username=match.group(1)))
        else:
            add_text(word)
    return pieces


def emote_counts(fragments: list[Fragment]) -> list[dict[str, Any]]:
    """Each emote of a message once, with how often it appears, in order of appearance."""
    counts = Counter(f.emote for f in fragments if f.type == "emote" and f.emote)
    return [{"code": code, "fallback": EMOTES[code], "count": n} for code, n in counts.items()]


def is_emote_only(body: str) -> bool:
    return all(word in EMOTES for word in body.split(" "))


def present(message: ChatMessage, author: User, badges: list[str]) -> ChatMessageOut:
    return ChatMessageOut(
        id=message.id,
        channel_id=message.channel_id,
        stream_id=message.stream_id,
        author=ChatAuthor(
            id=author.id,
            username=author.username,
            display_name=author.display_name,
            badges=badges,
        ),
        body=message.body,
        fragments=fragments_of(message.body),
        reply_to=message.reply_to_id,
        created_at=message.created_at,
    )


async def send_message(
    session: AsyncSession,
    *,
    user: User,
    channel: Channel,
    stream_id: uuid.UUID | None,
    raw: str,
    reply_to: uuid.UUID | None,
    role: ChannelRole | None = None,
) -> ChatMessageOut:
    """Check, store and broadcast a chat message (`role`: the author's in the channel, when
    the caller already looked it up)."""
    body = clean_message(raw)
    if role is None:
        role = await moderation.channel_role(session, channel, user)
    now = utcnow()
    fragments = fragments_of(body)
    await moderation.check_can_send(
        session,
        channel=channel,
        user=user,
        role=role,
        body=body,
        emote_only_body=is_emote_only(body),
        now=now,
        links=[f.url for f in fragments if f.type == "link" and f.url],
    )
    if reply_to is not None:
        parent = await session.get(ChatMessage, reply_to)
        if parent is None or parent.channel_id != channel.id or parent.deleted_at is not None:
            raise MessageNotFound("The message replied to does not exist here")
    message = ChatMessage(
        channel_id=channel.id,
        stream_id=stream_id,
        user_id=user.id,
        body=body,
        reply_to_id=reply_to,
        created_at=now,
    )
    session.add(message)
    await session.flush()
    subscribed = await subscriptions.subscribers_among(
        session, channel_id=channel.id, user_ids=[user.id], now=now
    )
    shown = present(message, user, moderation.badges_for(role, subscriber=bool(subscribed)))
    room = channel_room(channel.id)
    publish(session, "chat:message", shown.model_dump(mode="json"), rooms=(room,))
    emotes = emote_counts(shown.fragments)
    if emotes:  # seed 000's overlays show emotes as they are sent
        emoted = {
            "message_id": str(message.id),
            "channel_id": str(channel.id),
            "stream_id": str(stream_id) if stream_id else None,
            "user_id": str(user.id),
            "emotes": emotes,
        }
        publish(session, "chat:emote", emoted, rooms=(room,))
    return shown


async def delete_message(session: AsyncSession, *, actor: User, message_id: uuid.UUID) -> None:
    """Delete a message: its author, or a moderator of its channel."""
    message = await session.get(ChatMessage, message_id)
    if message is None or message.deleted_at is not None:
        raise MessageNotFound()
    channel = await session.get_one(Channel, message.channel_id)
    if message.user_id != actor.id:
        try:
            await moderation.ensure_moderator(session, channel, actor)
        except PermissionDenied as exc:
            raise PermissionDenied("You can delete only your own messages") from exc
    message.deleted_at, message.deleted_by, message.deleted_reason = utcnow(), actor.id, "deleted"
    await session.flush()
    publish(
        session,
        "chat:deleted",
        {"channel_id": str(channel.id), "message_id": str(message.id), "deleted_by": str(actor.id)},
        rooms=(channel_room(channel.id),),
    )


async def clear_chat(session: AsyncSession, *, actor: User, channel: Channel) -> int:
    """Clear the channel's chat for everyone (moderators); returns how many were cleared."""
    await moderation.ensure_moderator(session, channel, actor)
    result = await session.execute(
        update(ChatMessage)
        .where(ChatMessage.channel_id == channel.id, ChatMessage.deleted_at.is_(None))
        .values(deleted_at=utcnow(), deleted_by=actor.id, deleted_reason="cleared")
    )
    publish(
        session,
        "chat:cleared",
        {"channel_id": str(channel.id), "moderator_id": str(actor.id)},
        rooms=(channel_room(channel.id),),
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def history(
    session: AsyncSession, *, stream_id: uuid.UUID, params: PageParams
) -> tuple[list[ChatMessageOut], PageInfo]:
    """A stream's messages, newest first, without deleted ones."""
    query = (
        select(ChatMessage, User)
        .join(User, User.id == ChatMessage.user_id)
        .where(ChatMessage.stream_id == stream_id, ChatMessage.deleted_at.is_(None))
    )
    rows, cursor = await paginate_rows(
        session, query, keys=[SortKey(ChatMessage.id, lambda r: r[0].id)], params=params
    )
    return await _present_rows(session, rows), cursor


async def replay(
    session: AsyncSession,
    *,
    stream_id: uuid.UUID,
    since: datetime,
    until: datetime | None,
    params: PageParams,
) -> tuple[list[ChatMessageOut], PageInfo]:
    """A stream's messages sent from `since` up to `until`, oldest first, without deleted,
    cleared or purged ones (a recording's chat replay)."""
    query = (
        select(ChatMessage, User)
        .join(User, User.id == ChatMessage.user_id)
        .where(
            ChatMessage.stream_id == stream_id,
            ChatMessage.deleted_at.is_(None),
            ChatMessage.created_at >= since,
        )
    )
    if until is not None:
        query = query.where(ChatMessage.created_at <= until)
    # Ids are time-ordered (v7): ascending ids are the order the messages were sent in.
    rows, cursor = await paginate_rows(
        session,
        query,
        keys=[SortKey(ChatMessage.id, lambda r: r[0].id, descending=False)],
        params=params,
    )
    return await _present_rows(session, rows), cursor


async def _present_rows(
    session: AsyncSession, rows: list[tuple[ChatMessage, User]]
) -> list[ChatMessageOut]:
    """Messages with their authors' badges in the channel (as it is now)."""
    if not rows:
        return []
    channel = await session.get_one(Channel, rows[0][0].channel_id)
    roles: dict[uuid.UUID, ChannelRole] = {}
    subscribed = await subscriptions.subscribers_among(
        session, channel_id=channel.id, user_ids={a.id for _, a in rows}, now=utcnow()
    )
    out = []
    for message, author in rows:
        if author.id not in roles:
            roles[author.id] = await moderation.channel_role(session, channel, author)
        badges = moderation.badges_for(roles[author.id], subscriber=author.id in subscribed)
        out.append(present(message, author, badges))
    return out
