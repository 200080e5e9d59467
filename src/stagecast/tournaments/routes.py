"""HTTP routes of tournaments. Joining, leaving, results (which may pay prizes), starting and
cancelling take `Idempotency-Key` like every money-moving POST."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from stagecast.accounts.deps import CurrentUser
from stagecast.deps import PageDep, ReadSessionDep, SessionDep
from stagecast.errors import problem_responses
from stagecast.money.routes.deps import MOVES, IdempotencyKey, move_once
from stagecast.pagination import Page, make_page
from stagecast.tournaments import service as tournaments
from stagecast.tournaments.models import Tournament, TournamentStatus
from stagecast.tournaments.schemas import (
    MatchUpdate,
    ResultIn,
    StartIn,
    TournamentCreate,
    TournamentOut,
    TournamentSummary,
)

router = APIRouter(prefix="/tournaments", tags=["tournaments"])

_WRITE = problem_responses(401, 403, 404, 409, 422)
# Money-moving and limited to the organiser (or a match's players).
_GUARDED_MOVES = problem_responses(401, 402, 403, 404, 409, 422, 429)


@router.post("", status_code=201, responses=problem_responses(401, 422))
async def create_tournament(
    body: TournamentCreate, user: CurrentUser, session: SessionDep
) -> TournamentOut:
    """Organise a tournament: players join until it starts."""
    async with session.begin():
        made = await tournaments.create_tournament(session, organiser=user, data=body)
        return await tournaments.announce(session, made)


@router.get("", responses=problem_responses(422))
async def list_tournaments(
    session: ReadSessionDep,
    page: PageDep,
    status: Annotated[TournamentStatus | None, Query()] = None,
) -> Page[TournamentSummary]:
    """Tournaments, newest first; `status` keeps one kind (open, running, completed…)."""
    async with session.begin():
        rows, cursor = await tournaments.list_tournaments(
            session, params=page, status=status.value if status else None
        )
    return make_page(rows, cursor)


@router.get("/{tournament_id}", responses=problem_responses(404, 422))
async def get_tournament(tournament_id: uuid.UUID, session: ReadSessionDep) -> TournamentOut:
    """The bracket (rounds and their matches), the players and the standings."""
    async with session.begin():
        return await tournaments.view(
            session, await tournaments.get_tournament(session, tournament_id)
        )


async def _changing(
    request: Request,
    session: SessionDep,
    user_id: uuid.UUID,
    key: str | None,
    body: Any,
    change: Callable[[], Awaitable[Tournament]],
) -> JSONResponse:
    async def action() -> tuple[int, dict[str, Any]]:
        changed = await change()
        shown = await tournaments.announce(session, changed)
        return 200, shown.model_dump(mode="json")

    return await move_once(request, session, user_id, key, body, action)


@router.post("/{tournament_id}/join", responses=MOVES, response_model=TournamentOut)
async def join(
    tournament_id: uuid.UUID, request: Request, user: CurrentUser, session: SessionDep,
    key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Take a place; the entry fee moves from your wallet into the prize pool (402
    `INSUFFICIENT_BALANCE`, and nothing moves, when the wallet cannot pay it)."""
    return await _changing(
        request, session, user.id, key, {},
        lambda: tournaments.join(session, tournament_id=tournament_id, user=user),
    )  # fmt: skip


@router.post("/{tournament_id}/leave", responses=MOVES, response_model=TournamentOut)
async def leave(
    tournament_id: uuid.UUID, request: Request, user: CurrentUser, session: SessionDep,
    key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Give your place up before the start; the entry fee comes back."""
    return await _changing(
        request, session, user.id, key, {},
        lambda: tournaments.leave(session, tournament_id=tournament_id, user=user),
    )  # fmt: skip


@router.post("/{tournament_id}/start", responses=_WRITE, response_model=TournamentOut)
async def start(
    tournament_id: uuid.UUID, request: Request, user: CurrentUser, session: SessionDep,
    body: StartIn | None = None, key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Seed the players (random, or by a leaderboard's ranks) and draw the bracket; byes go
    to the top seeds when the players are not a power of two. The organiser's."""
    seeding = body or StartIn()
    return await _changing(
        request, session, user.id, key, seeding,
        lambda: tournaments.start(session, tournament_id=tournament_id, actor=user,
                                  seeding=seeding),
    )  # fmt: skip


@router.post("/{tournament_id}/cancel", responses=_GUARDED_MOVES, response_model=TournamentOut)
async def cancel(
    tournament_id: uuid.UUID, request: Request, user: CurrentUser, session: SessionDep,
    key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Call the tournament off; every entry fee goes back. The organiser's."""
    return await _changing(
        request, session, user.id, key, {},
        lambda: tournaments.cancel(session, tournament_id=tournament_id, actor=user),
    )  # fmt: skip


@router.post(
    "/{tournament_id}/matches/{match_id}/result",
    responses=_GUARDED_MOVES,
    response_model=TournamentOut,
)
async def report_result(
    tournament_id: uuid.UUID, match_id: uuid.UUID, body: ResultIn, request: Request,
    user: CurrentUser, session: SessionDep, key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """The organiser decides; a player's report counts once the other player names the same
    winner. The winner goes through to the next match; the final pays the prizes."""
    return await _changing(
        request, session, user.id, key, body,
        lambda: tournaments.report_result(
            session, tournament_id=tournament_id, match_id=match_id, actor=user,
            winner_id=body.winner_id, score=body.score,
        ),
    )  # fmt: skip


@router.patch("/{tournament_id}/matches/{match_id}", responses=_WRITE)
async def update_match(
    tournament_id: uuid.UUID, match_id: uuid.UUID, body: MatchUpdate, user: CurrentUser,
    session: SessionDep,
) -> TournamentOut:  # fmt: skip
    """Name the channel that streams the match (its page links to the stream)."""
    async with session.begin():
        changed = await tournaments.set_match_channel(
            session, tournament_id=tournament_id, match_id=match_id, actor=user,
            channel_ref=body.channel_id,
        )  # fmt: skip
        return await tournaments.announce(session, changed)
