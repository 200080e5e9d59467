"""This node among the nodes on one database: its heartbeat, and which live streams are left
without a pipeline because the node packaging them is gone.

Every start of `stagecast serve` is a new incarnation (a `MediaNode` row) of a node whose name
stays the same across restarts (host, data dir and port, or the `node_name` setting). A live
stream names the incarnation packaging it. It is orphaned when that incarnation stopped
heartbeating for `node_stale_seconds`, when its node started again (a new incarnation under
the same name: the old one was killed), or when it is this incarnation's own and no broadcast
holds it any more.
"""

from __future__ import annotations

import hashlib
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from stagecast.config import Settings
from stagecast.db.base import new_id, utcnow
from stagecast.db.engine import Database
from stagecast.media.models import MediaNode
from stagecast.streams.models import Stream, StreamStatus


def default_node_name(settings: Settings) -> str:
    """Return a name that stays the same when this node restarts, and differs between two
    nodes on one machine (another data dir or port)."""
    place = hashlib.sha256(str(settings.data_dir.resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{place}-{settings.port}"


@dataclass(frozen=True, slots=True)
class Orphan:
    """A live stream whose pipeline is gone, and when its node was last heard of."""

    stream_id: uuid.UUID
    channel_id: uuid.UUID
    last_heard: datetime | None


class NodeRegistry:
    """This incarnation's row, its heartbeat, and the streams others left behind."""

    def __init__(self, settings: Settings) -> None:
        media = settings.media
        self.id = new_id()
        self.name = media.node_name or default_node_name(settings)
        self.stale_after = timedelta(seconds=media.node_stale_seconds)

    async def heartbeat(self, db: Database) -> None:
        now = utcnow()
        async with db.session() as session, session.begin():
            node = await session.get(MediaNode, self.id)
            if node is None:
                session.add(MediaNode(id=self.id, name=self.name, started_at=now, heartbeat_at=now))
            else:
                node.heartbeat_at = now

    async def leave(self, db: Database) -> None:
        """A clean stop: this incarnation packages nothing any more."""
        async with db.session() as session, session.begin():
            await session.execute(delete(MediaNode).where(MediaNode.id == self.id))

    async def alive(self, db: Database, node_id: uuid.UUID) -> bool:
        """Whether another incarnation still runs (heartbeats, and its node did not restart)."""
        async with db.read_session() as session, session.begin():
            node = await session.get(MediaNode, node_id)
            if node is None:
                return False
            newer = await session.scalar(
                select(MediaNode.id).where(
                    MediaNode.name == node.name, MediaNode.started_at > node.started_at
                )
            )
        return newer is None and utcnow() - node.heartbeat_at <= self.stale_after

    async def orphans(
        self, db: Database, *, held: set[uuid.UUID], include_unowned: bool
    ) -> list[Orphan]:
        """The live streams no pipeline holds any more. `held`: the channels this node's
        broadcasts hold; `include_unowned`: also streams that name no node (made before
        nodes were recorded), which only a node's first sweep takes."""
        now = utcnow()
        async with db.read_session() as session, session.begin():
            live = (
                await session.execute(
                    select(Stream.id, Stream.channel_id, Stream.node_id).where(
                        Stream.status == StreamStatus.LIVE.value
                    )
                )
            ).all()
            nodes = {node.id: node for node in await session.scalars(select(MediaNode))}
        newest: dict[str, datetime] = {}
        for node in nodes.values():
            newest[node.name] = max(newest.get(node.name, node.started_at), node.started_at)
        found: list[Orphan] = []
        for stream_id, channel_id, node_id in live:
            if node_id is None:
                if include_unowned:
                    found.append(Orphan(stream_id, channel_id, None))
                continue
            if node_id == self.id:
                if channel_id not in held:
                    found.append(Orphan(stream_id, channel_id, now))
                continue
            owner = nodes.get(node_id)
            if owner is None:
                found.append(Orphan(stream_id, channel_id, None))
            elif (
                owner.started_at < newest[owner.name] or now - owner.heartbeat_at > self.stale_after
            ):
                found.append(Orphan(stream_id, channel_id, owner.heartbeat_at))
        return found

    async def forget_gone(self, db: Database) -> None:
        """Drop the rows of incarnations that are gone and own no live stream."""
        now = utcnow()
        async with db.session() as session, session.begin():
            owning = select(Stream.node_id).where(
                Stream.status == StreamStatus.LIVE.value, Stream.node_id.is_not(None)
            )
            await session.execute(
                delete(MediaNode).where(
                    MediaNode.id != self.id,
                    MediaNode.heartbeat_at < now - self.stale_after,
                    MediaNode.id.not_in(owning),
                )
            )
