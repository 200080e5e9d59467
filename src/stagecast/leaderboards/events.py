"""Scores that change without an event of their own saying so.

The supporters and chat boards follow the events their domains already publish
(`tip:received`, `donation:received`, `gift:sent`, `chat:message`); subscription payments,
match results and follows publish this internal event, which goes to no room: only the
leaderboards' feed (sorted_sets.py) reads it, once its transaction commits, to mark the user's
score on the board for counting again.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.realtime.bus import publish

CHANGED = "leaderboard:changed"
FOLLOWERS_BOARD = "creators:followers"


def supporters_board(channel_id: uuid.UUID) -> str:
    return f"channel:{channel_id}:supporters"


def chat_board(channel_id: uuid.UUID) -> str:
    return f"channel:{channel_id}:chat"


def standings_board(tournament_id: uuid.UUID) -> str:
    return f"tournament:{tournament_id}:standings"


def member_changed(session: AsyncSession, *, board: str, user_id: uuid.UUID) -> None:
    """Say, once the transaction commits, that a user's score on a board changed."""
    publish(session, CHANGED, {"board": board, "user_id": str(user_id)}, rooms=())
