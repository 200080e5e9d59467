"""Tournament steps for the ledger's random-sequence test (tests/money/test_invariants.py),
and the prize pools' invariant it checks after each step."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from stagecast.db.base import utcnow
from stagecast.money import ledger
from stagecast.money.models import LedgerTransaction
from stagecast.tournaments import service as tournaments
from stagecast.tournaments.models import (
    MatchStatus,
    Tournament,
    TournamentMatch,
    TournamentParticipant,
    TournamentStatus,
)
from stagecast.tournaments.schemas import StartIn, TournamentCreate


async def tournament_step(session: Any, step: tuple[str, int, int], people: list[Any]) -> None:
    """Open, join, leave, start, decide a match or cancel (the `amount` picks a tournament)."""
    kind, who, amount = step
    user = people[who]
    if kind == "t_open":
        data = TournamentCreate(
            name="T", category="chess", max_participants=3, starts_at=utcnow() + timedelta(hours=1),
            entry_fee_tokens=amount, prize_split=[70, 30],
        )  # fmt: skip
        await tournaments.create_tournament(session, organiser=user, data=data)
        return
    found = (await session.scalars(select(Tournament).order_by(Tournament.id))).all()
    if not found:
        return
    tournament = found[amount % len(found)]
    organiser = next(p for p in people if p.id == tournament.organiser_id)
    if kind == "t_join":
        await tournaments.join(session, tournament_id=tournament.id, user=user)
    elif kind == "t_leave":
        await tournaments.leave(session, tournament_id=tournament.id, user=user)
    elif kind == "t_start":
        await tournaments.start(
            session, tournament_id=tournament.id, actor=organiser, seeding=StartIn()
        )
    elif kind == "t_cancel":
        await tournaments.cancel(session, tournament_id=tournament.id, actor=organiser)
    elif kind == "t_result":
        match = await session.scalar(
            select(TournamentMatch)
            .where(
                TournamentMatch.tournament_id == tournament.id,
                TournamentMatch.status == MatchStatus.READY.value,
            )
            .order_by(TournamentMatch.round, TournamentMatch.position)
        )
        if match is not None and match.player1_id is not None:
            await tournaments.report_result(
                session, tournament_id=tournament.id, match_id=match.id, actor=organiser,
                winner_id=match.player1_id, score=None,
            )  # fmt: skip


async def check_prize_pools(session: Any) -> None:
    """An open or running tournament's pool holds its players' fees; a finished one's is empty
    (paid out as prizes, or refunded)."""
    for tournament in (await session.scalars(select(Tournament))).all():
        pool = await ledger.balance_of(session, tournaments.prize_pool_of(tournament.id))
        if tournament.status in {TournamentStatus.COMPLETED, TournamentStatus.CANCELLED}:
            assert pool == 0, tournament.status
            continue
        fees = 0
        paid = await session.scalars(
            select(TournamentParticipant.fee_transaction_id).where(
                TournamentParticipant.tournament_id == tournament.id,
                TournamentParticipant.fee_transaction_id.is_not(None),
            )
        )
        for transaction_id in paid.all():
            fee = await session.get_one(LedgerTransaction, transaction_id)
            assert fee.kind == tournaments.FEE
            fees += tournament.entry_fee_tokens
        assert pool == fees
