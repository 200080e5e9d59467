"""HTTP routes of leaderboards."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

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


async def _sorted_sets(runtime: Runtime, board: leaderboards.Board) -> SortedSets | None:
    """The Redis store for this board, after this node's committed events reached it."""
    feed = runtime.leaderboards
    if feed is None or not board.in_sorted_sets:
        return None
    sets = feed.sorted_sets()
    if sets is not None:
        await feed.drain()
    return sets


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
        sets = await _sorted_sets(runtime, board)
        if sets is not None:
            key = await sets.ensure(session, board, period, now)
            ranked = await sets.top(key, limit=limit)
        else:
            ranked = await leaderboards.sql_top(session, board, since, limit=limit)
        entries = await leaderboards.present(session, ranked)
    return LeaderboardOut(
        name=board.name,
        period=period,
        since=since,
        backend="redis" if sets is not None else "sql",
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
        sets = await _sorted_sets(runtime, board)
        if sets is not None:
            key = await sets.ensure(session, board, period, now)
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
