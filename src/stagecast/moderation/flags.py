"""Automatic flags of chat: blocked terms, link spam and floods raise flags into the queue.

Chat sends are a hot path, so the watching is in memory (each node sees the messages of the
sockets it holds, and a socket stays on one node): a message that raises nothing costs no
statement. A raised flag is written afterwards, in its own transaction, beside the send; a
refused message (a blocked term, a link where the channel forbids them) is stored then, as a
deleted message, so that the flag and its case point at what was said.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from stagecast.chat.models import ChatMessage
from stagecast.config import ModerationSettings
from stagecast.db.base import new_id, utcnow
from stagecast.moderation.cases import join_case
from stagecast.moderation.models import FlagKind, ModerationFlag, ReportedType

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from stagecast.db.engine import Database

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RaisedFlag:
    """A flag to write: about `message_id`, stored already or (`refused`) not."""

    kind: FlagKind
    channel_id: uuid.UUID
    stream_id: uuid.UUID | None
    user_id: uuid.UUID
    message_id: uuid.UUID
    text: str
    evidence: dict[str, Any]
    refused: bool = False


@dataclass(slots=True)
class _Recent:
    """One user's recent messages in one channel: (time, folded text, had a link)."""

    sent: deque[tuple[float, str, bool]] = field(default_factory=deque)
    flagged: dict[FlagKind, float] = field(default_factory=dict)


class ChatWatch:
    """Notices floods, repeated text and link spam in the messages this node receives."""

    def __init__(
        self,
        settings: ModerationSettings,
        database: Callable[[], Database],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._database = database
        self._clock = clock
        self._recent: OrderedDict[tuple[uuid.UUID, uuid.UUID], _Recent] = OrderedDict()
        self._writes: set[asyncio.Task[None]] = set()
        self._horizon = max(
            settings.flood_window_seconds,
            settings.repeat_window_seconds,
            settings.link_window_seconds,
        )

    def _recent_of(self, channel_id: uuid.UUID, user_id: uuid.UUID) -> _Recent:
        key = (channel_id, user_id)
        recent = self._recent.get(key)
        if recent is None:
            recent = self._recent[key] = _Recent()
            while len(self._recent) > self.settings.tracked_users:
                self._recent.popitem(last=False)  # the longest quiet
        else:
            self._recent.move_to_end(key)
        return recent

    def _cooling(self, recent: _Recent, kind: FlagKind, now: float) -> bool:
        last = recent.flagged.get(kind)
        if last is not None and now - last < self.settings.flag_cooldown_seconds:
            return True
        recent.flagged[kind] = now
        return False

    def sent(
        self,
        *,
        channel_id: uuid.UUID,
        stream_id: uuid.UUID | None,
        user_id: uuid.UUID,
        message_id: uuid.UUID,
        text: str,
        links: list[str],
    ) -> list[RaisedFlag]:
        """Note a message that was sent; write the flags it raises (and return them)."""
        if not self.settings.flags_enabled:
            return []
        s = self.settings
        now = self._clock()
        recent = self._recent_of(channel_id, user_id)
        folded = text.casefold()
        recent.sent.append((now, folded, bool(links)))
        while recent.sent and now - recent.sent[0][0] > self._horizon:
            recent.sent.popleft()

        def within(seconds: float) -> list[tuple[float, str, bool]]:
            return [entry for entry in recent.sent if now - entry[0] <= seconds]

        raised: list[tuple[FlagKind, dict[str, Any]]] = []
        flood = within(s.flood_window_seconds)
        repeats = [e for e in within(s.repeat_window_seconds) if e[1] == folded]
        if len(flood) > s.flood_messages and not self._cooling(recent, FlagKind.FLOOD, now):
            raised.append((FlagKind.FLOOD, {
                "reason": "rate", "count": len(flood), "threshold": s.flood_messages,
                "window_seconds": s.flood_window_seconds,
            }))  # fmt: skip
        elif len(repeats) >= s.repeat_messages and not self._cooling(recent, FlagKind.FLOOD, now):
            raised.append((FlagKind.FLOOD, {
                "reason": "repeated", "matched": text, "count": len(repeats),
                "threshold": s.repeat_messages, "window_seconds": s.repeat_window_seconds,
            }))  # fmt: skip
        if links:
            linked = [e for e in within(s.link_window_seconds) if e[2]]
            if len(linked) > s.link_messages and not self._cooling(recent, FlagKind.LINK_SPAM, now):
                raised.append((FlagKind.LINK_SPAM, {
                    "reason": "rate", "matched": links, "count": len(linked),
                    "threshold": s.link_messages, "window_seconds": s.link_window_seconds,
                }))  # fmt: skip
        flags = [
            RaisedFlag(
                kind=kind,
                channel_id=channel_id,
                stream_id=stream_id,
                user_id=user_id,
                message_id=message_id,
                text=text,
                evidence={"text": text, **evidence},
            )
            for kind, evidence in raised
        ]
        self._write(flags)
        return flags

    def refused(
        self,
        kind: FlagKind,
        *,
        channel_id: uuid.UUID,
        stream_id: uuid.UUID | None,
        user_id: uuid.UUID,
        text: str,
        matched: str | list[str],
        reason: str,
    ) -> RaisedFlag | None:
        """Note a message that a filter refused; write its flag (once per cooldown)."""
        if not self.settings.flags_enabled:
            return None
        recent = self._recent_of(channel_id, user_id)
        if self._cooling(recent, kind, self._clock()):
            return None
        flag = RaisedFlag(
            kind=kind,
            channel_id=channel_id,
            stream_id=stream_id,
            user_id=user_id,
            message_id=new_id(),
            text=text,
            evidence={"text": text, "matched": matched, "reason": reason, "count": 1},
            refused=True,
        )
        self._write([flag])
        return flag

    def _write(self, flags: list[RaisedFlag]) -> None:
        if not flags:
            return
        task = asyncio.create_task(self._store(flags))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _store(self, flags: list[RaisedFlag]) -> None:
        try:
            async with self._database().session() as session, session.begin():
                for flag in flags:
                    await store_flag(session, flag)
        except Exception:  # a lost flag must not break chat; the message itself went through
            log.exception("chat_flag_not_written", kinds=[f.kind.value for f in flags])

    async def drain(self) -> None:
        """Wait for the flags being written (tests, shutdown)."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)


async def store_flag(session: AsyncSession, flag: RaisedFlag) -> ModerationFlag:
    """Write one flag into its message's open case (a refused message is stored, deleted)."""
    now = utcnow()
    if flag.refused:
        session.add(
            ChatMessage(
                id=flag.message_id,
                channel_id=flag.channel_id,
                stream_id=flag.stream_id,
                user_id=flag.user_id,
                body=flag.text,
                created_at=now,
                deleted_at=now,
                deleted_reason=flag.kind.value,
            )
        )
        await session.flush()
    case_id = await join_case(
        session, content_type=ReportedType.CHAT_MESSAGE, content_id=flag.message_id, now=now
    )
    row = ModerationFlag(
        kind=flag.kind.value,
        content_type=ReportedType.CHAT_MESSAGE.value,
        content_id=flag.message_id,
        channel_id=flag.channel_id,
        user_id=flag.user_id,
        evidence=flag.evidence,
        case_id=case_id,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return row
