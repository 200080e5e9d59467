"""Points that reach a board without an event of their own (subscription payments).

The other boards are fed by the events their domains already publish (`tip:received`,
`donation:received`, `gift:sent`, `chat:message`); this internal event goes to no room: only
the leaderboards' feed (sorted_sets.py) reads it, once its transaction commits.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.db.base import utcnow
from stagecast.realtime.bus import publish

POINTS = "leaderboard:points"


def supporters_board(channel_id: uuid.UUID) -> str:
    return f"channel:{channel_id}:supporters"


def chat_board(channel_id: uuid.UUID) -> str:
    return f"channel:{channel_id}:chat"


def standings_board(tournament_id: uuid.UUID) -> str:
    return f"tournament:{tournament_id}:standings"


def points_scored(session: AsyncSession, *, board: str, user_id: uuid.UUID, points: int) -> None:
    """Add points to a user on a board once the transaction commits."""
    payload = {
        "board": board,
        "user_id": str(user_id),
        "points": points,
        "at": utcnow().isoformat(),
    }
    publish(session, POINTS, payload, rooms=())
