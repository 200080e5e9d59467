"""What the notifications API returns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from stagecast.accounts.schemas import Output


class NotificationOut(Output):
    id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class UnreadCount(BaseModel):
    unread: int


class MarkedRead(BaseModel):
    marked: int
