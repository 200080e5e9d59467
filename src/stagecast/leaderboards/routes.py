"""HTTP routes of leaderboards."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts import service as accounts
from stagecast.db.base import utcnow
from stagecast.deps import ReadSessionDep, RuntimeDep
from stagecast.errors import problem_responses
from stagecast.leaderboards import service as leaderboards
from stagecast.leaderboards.schemas import LeaderboardEntryOut, LeaderboardOut
from stagecast.leaderboards.service import MAX_LIMIT, Period
from stagecast.leaderboards.sorted_sets import SortedSets
from stagecast.runtime import Runtime

router = APIRouter(prefix="/leaderboards", tags=["leaderboards"])

PeriodQuery = Annotated[Period, Query(description="UTC calendar day, week (from Monday), month")]


async def _redis_set(
    runtime: Runtime,
    session: AsyncSession,
    board: leaderboards.Board,
    period: Period,
    now: datetime,
) -> tuple[SortedSets, str] | None:
    feed = runtime.leaderboards
    return None if feed is None else await feed.prepared(session, board, period, now)


@router.get("/{name}", responses=problem_responses(404, 422))
async def leaderboard(
    name: str,
    session: ReadSessionDep,
    runtime: RuntimeDep,
    period: PeriodQuery = Period.ALL,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
) -> LeaderboardOut:
    """The board's best: rank, user and score (see docs/interactions.md for the names)."""
    now = utcnow()
    since = leaderboards.period_start(period, now)
    async with session.begin():
        board = await leaderboards.resolve_board(session, name)
    found = await _redis_set(runtime, session, board, period, now)
    async with session.begin():
        if found is not None:
            sets, key = found
            ranked = await sets.top(key, limit=limit)
        else:
            ranked = await leaderboards.sql_top(session, board, since, limit=limit)
        entries = await leaderboards.present(session, ranked)
    return LeaderboardOut(
        name=board.name,
        period=period,
        since=since,
        backend="redis" if found is not None else "sql",
        data=entries,
    )


@router.get("/{name}/entries/{user_id}", responses=problem_responses(404, 422))
async def leaderboard_entry(
    name: str,
    user_id: uuid.UUID,
    session: ReadSessionDep,
    runtime: RuntimeDep,
    period: PeriodQuery = Period.ALL,
) -> LeaderboardEntryOut:
    """One user's rank and score on the board, with the entries around it."""
    now = utcnow()
    since = leaderboards.period_start(period, now)
    async with session.begin():
        board = await leaderboards.resolve_board(session, name)
        await accounts.get_user(session, user_id)
    found = await _redis_set(runtime, session, board, period, now)
    async with session.begin():
        if found is not None:
            sets, key = found
            rank, score, around = await sets.entry(key, user_id)
        else:
            rank, score, around = await leaderboards.sql_entry(session, board, since, user_id)
        neighbours = await leaderboards.present(session, around)
    return LeaderboardEntryOut(
        name=board.name,
        period=period,
        since=since,
        user_id=user_id,
        rank=rank,
        score=score,
        neighbours=neighbours,
    )
