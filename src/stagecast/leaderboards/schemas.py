"""Leaderboards in and out."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class BoardEntry(BaseModel):
    rank: int
    user_id: uuid.UUID
    username: str | None
    display_name: str | None
    score: int


class LeaderboardOut(BaseModel):
    name: str  # canonical (channels by id)
    period: str
    since: datetime | None  # where the period began (UTC); None for all time
    backend: str  # "redis" or "sql": where the scores were read
    data: list[BoardEntry]


class LeaderboardEntryOut(BaseModel):
    name: str
    period: str
    since: datetime | None
    user_id: uuid.UUID
    rank: int | None  # None: not on the board (no points in the period)
    score: int
    neighbours: list[BoardEntry]  # the entries around it, its own included
