"""The nodes that package live streams, with their heartbeats."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from stagecast.db.base import Base, utcnow


class MediaNode(Base):
    """One run of `stagecast serve` (a node's incarnation): a new row at every start.

    A live stream names the incarnation that packages it; when that incarnation stops
    heartbeating (or the same node starts again under a new one), the stream is ended from
    what was stored.
    """

    __tablename__ = "media_nodes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
