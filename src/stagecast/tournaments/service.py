"""Tournaments: joining (the entry fee into the prize pool), the bracket, results and their
advance, completion (prizes out of the pool) and cancellation (fees back).

Money moves only through the ledger: a fee is one transaction from the player's wallet into the
tournament's prize-pool account (`prize_pool:<id>`, never negative), a refund reverses it, and
completion pays the pool out to the winners' wallets by the organiser's split, leaving it at
zero. Every change publishes `tournament:updated` (the whole tournament) to its room.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.accounts.models import User
from stagecast.channels import service as channels
from stagecast.channels.models import Channel
from stagecast.db.base import utcnow
from stagecast.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from stagecast.leaderboards import events as leaderboard_events
from stagecast.leaderboards import service as leaderboards
from stagecast.money import ledger
from stagecast.money.ledger import Leg, wallet_of
from stagecast.money.models import AccountKind, LedgerAccount, LedgerTransaction
from stagecast.pagination import PageInfo, PageParams, SortKey, paginate
from stagecast.realtime.bus import publish
from stagecast.tournaments import brackets
from stagecast.tournaments.models import (
    MatchStatus,
    Tournament,
    TournamentFormat,
    TournamentMatch,
    TournamentParticipant,
    TournamentStatus,
)
from stagecast.tournaments.schemas import (
    MatchChannelOut,
    MatchOut,
    OrganiserOut,
    PlayerOut,
    RoundOut,
    StandingOut,
    StartIn,
    TournamentCreate,
    TournamentOut,
    TournamentSummary,
)

UPDATED = "tournament:updated"
FEE, PRIZE, REFUND = "tournament_fee", "tournament_prize", "tournament_refund"
_random = random.SystemRandom()


class TournamentNotFound(NotFound):
    code, title = "TOURNAMENT_NOT_FOUND", "Tournament not found"


class MatchNotFound(NotFound):
    code, title = "MATCH_NOT_FOUND", "Match not found"


class TournamentNotOpen(Conflict):
    code, title = "TOURNAMENT_NOT_OPEN", "This tournament has started or ended"


class TournamentNotRunning(Conflict):
    code, title = "TOURNAMENT_NOT_RUNNING", "This tournament is not running"


class TournamentFull(Conflict):
    code, title = "TOURNAMENT_FULL", "This tournament has no places left"


class AlreadyJoined(Conflict):
    code, title = "ALREADY_JOINED", "You are in this tournament already"


class NotAParticipant(Conflict):
    code, title = "NOT_A_PARTICIPANT", "You are not in this tournament"


class NotEnoughParticipants(Conflict):
    code, title = "NOT_ENOUGH_PARTICIPANTS", "A tournament needs at least two participants"


class MatchFinished(Conflict):
    code, title = "MATCH_FINISHED", "This match has its result"


class MatchNotReady(Conflict):
    code, title = "MATCH_NOT_READY", "This match is waiting for its players"


class NotOrganiser(PermissionDenied):
    code, title = "NOT_ORGANISER", "Only the tournament's organiser can do this"


def tournament_room(tournament_id: uuid.UUID | str) -> str:
    return f"tournament:{tournament_id}"


def prize_pool_of(tournament_id: uuid.UUID) -> str:
    return f"{AccountKind.PRIZE_POOL}:{tournament_id}"


# --- reading --------------------------------------------------------------------------------


async def get_tournament(
    session: AsyncSession, tournament_id: uuid.UUID, *, lock: bool = False
) -> Tournament:
    """A tournament; `lock` holds its row until the transaction ends (PostgreSQL), so that
    joins, results and cancellation of one tournament happen one at a time."""
    query = select(Tournament).where(Tournament.id == tournament_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    tournament = await session.scalar(query)
    if tournament is None:
        raise TournamentNotFound()
    return tournament


async def _participants(
    session: AsyncSession, tournament_id: uuid.UUID
) -> list[TournamentParticipant]:
    rows = await session.scalars(
        select(TournamentParticipant)
        .where(TournamentParticipant.tournament_id == tournament_id)
        .order_by(TournamentParticipant.joined_at, TournamentParticipant.id)
    )
    return list(rows.all())


async def _matches(session: AsyncSession, tournament_id: uuid.UUID) -> list[TournamentMatch]:
    rows = await session.scalars(
        select(TournamentMatch)
        .where(TournamentMatch.tournament_id == tournament_id)
        .order_by(TournamentMatch.round, TournamentMatch.position)
    )
    return list(rows.all())


async def list_tournaments(
    session: AsyncSession, *, params: PageParams, status: str | None
) -> tuple[list[TournamentSummary], PageInfo]:
    query = select(Tournament)
    if status is not None:
        query = query.where(Tournament.status == status)
    rows, cursor = await paginate(
        session, query, keys=[SortKey(Tournament.id, lambda t: t.id)], params=params
    )
    return [await summarise(session, t) for t in rows], cursor


async def summarise(session: AsyncSession, tournament: Tournament) -> TournamentSummary:
    count = await session.scalar(
        select(func.count()).where(TournamentParticipant.tournament_id == tournament.id)
    )
    organiser = await session.get_one(User, tournament.organiser_id)
    return TournamentSummary(**_summary_fields(tournament, organiser, int(count or 0),
                                              await _pool(session, tournament)))  # fmt: skip


def _summary_fields(
    tournament: Tournament, organiser: User, count: int, pool: int
) -> dict[str, object]:
    return {
        "id": tournament.id,
        "name": tournament.name,
        "category": tournament.category,
        "format": tournament.format,
        "status": tournament.status,
        "organiser": OrganiserOut(id=organiser.id, username=organiser.username),
        "max_participants": tournament.max_participants,
        "participant_count": count,
        "starts_at": tournament.starts_at,
        "entry_fee_tokens": tournament.entry_fee_tokens,
        "prize_split": list(tournament.prize_split),
        "prize_pool_tokens": pool,
        "winner_id": tournament.winner_id,
        "created_at": tournament.created_at,
    }


async def _pool(session: AsyncSession, tournament: Tournament) -> int:
    return await ledger.balance_of(session, prize_pool_of(tournament.id))


def _round_name(round_number: int, rounds: int, tournament_format: str) -> tuple[str, str]:
    """(name, bracket) of a round; `rounds` is the (winners) bracket's number of rounds."""
    if tournament_format == TournamentFormat.ROUND_ROBIN:
        return f"Round {round_number}", "main"
    if tournament_format == TournamentFormat.DOUBLE_ELIMINATION:
        if round_number == brackets.GRAND_FINAL:
            return "Grand final", "grand_final"
        if round_number == brackets.RESET:
            return "Grand final reset", "grand_final"
        if round_number > brackets.LOSERS:
            k = round_number - brackets.LOSERS
            last = k == brackets.losers_rounds(rounds)
            return ("Losers final" if last else f"Losers round {k}"), "losers"
        left = rounds - round_number
        names = {0: "Winners final", 1: "Winners semi-finals"}
        return names.get(left, f"Winners round {round_number}"), "winners"
    left = rounds - round_number
    names = {0: "Final", 1: "Semi-finals", 2: "Quarter-finals"}
    return names.get(left, f"Round {round_number}"), "main"


def _winners_rounds(matches: Sequence[TournamentMatch]) -> int:
    return max((m.round for m in matches if m.round < brackets.LOSERS), default=0)


async def view(session: AsyncSession, tournament: Tournament) -> TournamentOut:
    """The whole tournament: bracket by round, matches with their players, standings."""
    participants = await _participants(session, tournament.id)
    matches = await _matches(session, tournament.id)
    ids = {p.user_id for p in participants} | {tournament.organiser_id}
    users = {u.id: u for u in (await session.scalars(select(User).where(User.id.in_(ids)))).all()}
    channel_ids = {m.channel_id for m in matches if m.channel_id is not None}
    streamed: dict[uuid.UUID, Channel] = {}
    if channel_ids:
        found = await session.scalars(select(Channel).where(Channel.id.in_(channel_ids)))
        streamed = {c.id: c for c in found.all()}
    seeds = {p.user_id: p.seed for p in participants}

    def player(user_id: uuid.UUID | None) -> PlayerOut | None:
        if user_id is None:
            return None
        user = users[user_id]
        return PlayerOut(
            user_id=user.id,
            username=user.username,
            display_name=user.display_name,
            seed=seeds.get(user_id),
        )

    rounds_total = _winners_rounds(matches)
    by_round: dict[int, list[MatchOut]] = {}
    for match in matches:
        channel = streamed.get(match.channel_id) if match.channel_id else None
        by_round.setdefault(match.round, []).append(
            MatchOut(
                id=match.id,
                round=match.round,
                position=match.position,
                status=match.status,
                player1=player(match.player1_id),
                player2=player(match.player2_id),
                winner_id=match.winner_id,
                score=match.score,
                reported_by=[uuid.UUID(k) for k in sorted(match.reports)],
                channel=MatchChannelOut(
                    id=channel.id, slug=channel.slug, name=channel.name, url=f"/{channel.slug}"
                )
                if channel
                else None,
                completed_at=match.completed_at,
            )
        )
    rounds = []
    for n, ms in sorted(by_round.items()):
        name, bracket = _round_name(n, rounds_total, tournament.format)
        rounds.append(RoundOut(round=n, name=name, bracket=bracket, matches=ms))
    pool = await _pool(session, tournament)
    fields = _summary_fields(tournament, users[tournament.organiser_id], len(participants), pool)
    return TournamentOut(
        **fields,
        rules=tournament.rules,
        seeding=tournament.seeding,
        started_at=tournament.started_at,
        completed_at=tournament.completed_at,
        cancelled_at=tournament.cancelled_at,
        rounds=rounds,
        standings=_standings(tournament, participants, matches, users),
    )


def _record(
    matches: Sequence[TournamentMatch],
) -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, int]]:
    wins: dict[uuid.UUID, int] = {}
    losses: dict[uuid.UUID, int] = {}
    for match in matches:
        if match.status != MatchStatus.COMPLETED or match.winner_id is None:
            continue
        wins[match.winner_id] = wins.get(match.winner_id, 0) + 1
        loser = match.player2_id if match.winner_id == match.player1_id else match.player1_id
        if loser is not None:
            losses[loser] = losses.get(loser, 0) + 1
    return wins, losses


def _standings(
    tournament: Tournament,
    participants: Sequence[TournamentParticipant],
    matches: Sequence[TournamentMatch],
    users: dict[uuid.UUID, User],
) -> list[StandingOut]:
    """Placed players by placement; before that, by wins, fewest losses, then seed."""
    wins, losses = _record(matches)
    # Out after one loss in single elimination, after two in double elimination.
    lives = {TournamentFormat.SINGLE_ELIMINATION: 1, TournamentFormat.DOUBLE_ELIMINATION: 2}
    allowed = lives.get(TournamentFormat(tournament.format))
    never = len(participants) + 1

    def order(p: TournamentParticipant) -> tuple[int, int, int, int, str]:
        return (p.placement or never, -wins.get(p.user_id, 0), losses.get(p.user_id, 0),
                p.seed or never, str(p.user_id))  # fmt: skip

    ranked = sorted(participants, key=order)
    return [
        StandingOut(
            rank=n + 1,
            user_id=p.user_id,
            username=users[p.user_id].username,
            seed=p.seed,
            wins=wins.get(p.user_id, 0),
            losses=losses.get(p.user_id, 0),
            eliminated=allowed is not None and losses.get(p.user_id, 0) >= allowed,
            placement=p.placement,
            prize_tokens=p.prize_tokens,
        )
        for n, p in enumerate(ranked)
    ]


# --- changing -------------------------------------------------------------------------------


async def announce(session: AsyncSession, tournament: Tournament) -> TournamentOut:
    """The tournament as it is now, also sent to its room once the transaction commits."""
    await session.flush()
    shown = await view(session, tournament)
    publish(
        session, UPDATED, shown.model_dump(mode="json"), rooms=(tournament_room(tournament.id),)
    )
    return shown


async def create_tournament(
    session: AsyncSession, *, organiser: User, data: TournamentCreate
) -> Tournament:
    if data.starts_at < utcnow():
        raise ValidationFailed("starts_at is in the past")
    tournament = Tournament(
        organiser_id=organiser.id,
        name=data.name,
        category=data.category,
        format=data.format.value,
        max_participants=data.max_participants,
        starts_at=data.starts_at,
        entry_fee_tokens=data.entry_fee_tokens,
        prize_split=list(data.prize_split),
        rules=data.rules,
    )
    session.add(tournament)
    await session.flush()
    # The prize pool is a ledger account of its own, opened with the tournament (a user's
    # accounts are opened by the ledger on first use; this one has no user to own it).
    session.add(
        LedgerAccount(
            key=prize_pool_of(tournament.id), kind=AccountKind.PRIZE_POOL.value, owner_id=None,
            balance=0, allow_negative=False,
        )
    )  # fmt: skip
    await session.flush()
    return tournament


def _require_organiser(tournament: Tournament, actor: User) -> None:
    if actor.id != tournament.organiser_id:
        raise NotOrganiser()


async def join(session: AsyncSession, *, tournament_id: uuid.UUID, user: User) -> Tournament:
    """Take a place, paying the entry fee into the prize pool; InsufficientBalance (nothing
    moves) when the wallet cannot pay it."""
    tournament = await get_tournament(session, tournament_id, lock=True)
    if tournament.status != TournamentStatus.OPEN:
        raise TournamentNotOpen()
    participants = await _participants(session, tournament.id)
    if any(p.user_id == user.id for p in participants):
        raise AlreadyJoined()
    if len(participants) >= tournament.max_participants:
        raise TournamentFull()
    fee: LedgerTransaction | None = None
    if tournament.entry_fee_tokens:
        fee = await ledger.post(
            session,
            kind=FEE,
            legs=[
                Leg(wallet_of(user.id), -tournament.entry_fee_tokens),
                Leg(prize_pool_of(tournament.id), tournament.entry_fee_tokens),
            ],
            description=f"Entry to {tournament.name}",
            actor_id=user.id,
            details={"tournament_id": str(tournament.id)},
        )
    session.add(
        TournamentParticipant(
            tournament_id=tournament.id, user_id=user.id, fee_transaction_id=fee.id if fee else None
        )
    )
    return tournament


async def _refund(
    session: AsyncSession, tournament: Tournament, participant: TournamentParticipant
) -> None:
    if participant.fee_transaction_id is None:
        return
    original = await session.get_one(LedgerTransaction, participant.fee_transaction_id)
    await ledger.reverse(
        session, original, kind=REFUND, description=f"Refund of the entry to {tournament.name}"
    )
    participant.fee_transaction_id = None


async def leave(session: AsyncSession, *, tournament_id: uuid.UUID, user: User) -> Tournament:
    """Give the place up before the start; the fee comes back."""
    tournament = await get_tournament(session, tournament_id, lock=True)
    if tournament.status != TournamentStatus.OPEN:
        raise TournamentNotOpen()
    participant = await session.scalar(
        select(TournamentParticipant).where(
            TournamentParticipant.tournament_id == tournament.id,
            TournamentParticipant.user_id == user.id,
        )
    )
    if participant is None:
        raise NotAParticipant()
    await _refund(session, tournament, participant)
    await session.delete(participant)
    return tournament


async def cancel(session: AsyncSession, *, tournament_id: uuid.UUID, actor: User) -> Tournament:
    """Call the tournament off (open or running): every fee comes back."""
    tournament = await get_tournament(session, tournament_id, lock=True)
    _require_organiser(tournament, actor)
    if tournament.status not in {TournamentStatus.OPEN, TournamentStatus.RUNNING}:
        raise Conflict("A completed or cancelled tournament cannot be cancelled")
    for participant in await _participants(session, tournament.id):
        await _refund(session, tournament, participant)
    tournament.status = TournamentStatus.CANCELLED.value
    tournament.cancelled_at = utcnow()
    return tournament


async def _seeded(
    session: AsyncSession, participants: list[TournamentParticipant], start: StartIn
) -> tuple[list[TournamentParticipant], str]:
    if start.seeding == "random":
        shuffled = list(participants)
        _random.shuffle(shuffled)
        return shuffled, "random"
    if not start.leaderboard:
        raise ValidationFailed("Seeding by leaderboard needs `leaderboard` (its name)")
    try:
        board = await leaderboards.resolve_board(session, start.leaderboard)
    except leaderboards.LeaderboardNotFound as exc:
        raise ValidationFailed(exc.detail or "No such leaderboard") from None
    since = leaderboards.period_start(start.period, utcnow())
    order = {
        user_id: n
        for n, (user_id, _) in enumerate(await leaderboards.all_scores(session, board, since))
    }
    # Ranked players by rank; the others after them, in the order they joined.
    unranked = len(order)
    ranked = sorted(
        enumerate(participants), key=lambda item: (order.get(item[1].user_id, unranked), item[0])
    )
    return [p for _, p in ranked], f"{board.name}:{start.period}"


async def start(
    session: AsyncSession, *, tournament_id: uuid.UUID, actor: User, seeding: StartIn
) -> Tournament:
    """Fix the seeds and the bracket; byes (single elimination) go through at once."""
    tournament = await get_tournament(session, tournament_id, lock=True)
    _require_organiser(tournament, actor)
    if tournament.status != TournamentStatus.OPEN:
        raise TournamentNotOpen()
    participants = await _participants(session, tournament.id)
    if len(participants) < 2:
        raise NotEnoughParticipants()
    seeded, how = await _seeded(session, participants, seeding)
    for n, participant in enumerate(seeded, start=1):
        participant.seed = n
    now = utcnow()
    tournament.status = TournamentStatus.RUNNING.value
    tournament.started_at = now
    tournament.seeding = how[:120]
    players = [p.user_id for p in seeded]
    if tournament.format == TournamentFormat.ROUND_ROBIN:
        _draw_round_robin(session, tournament, players)
    elif tournament.format == TournamentFormat.DOUBLE_ELIMINATION:
        _draw_double_elimination(session, tournament, players, now=now)
    else:
        _draw_elimination(session, tournament, players, now=now)
    await session.flush()
    return tournament


def _draw_round_robin(
    session: AsyncSession, tournament: Tournament, players: list[uuid.UUID]
) -> None:
    for round_number, pairs in enumerate(brackets.round_robin(players), start=1):
        for position, (a, b) in enumerate(pairs):
            session.add(
                TournamentMatch(
                    tournament_id=tournament.id, round=round_number, position=position,
                    player1_id=a, player2_id=b, status=MatchStatus.READY.value,
                )
            )  # fmt: skip


def _draw_elimination(
    session: AsyncSession, tournament: Tournament, players: list[uuid.UUID], *, now: datetime
) -> None:
    """Every round's matches, round 1 filled by seed; byes go through at once."""
    size = brackets.bracket_size(len(players))
    created: dict[tuple[int, int], TournamentMatch] = {}
    for round_number in range(1, brackets.rounds_of(size) + 1):
        for position in range(size >> round_number):
            created[(round_number, position)] = TournamentMatch(
                tournament_id=tournament.id, round=round_number, position=position,
                status=MatchStatus.PENDING.value,
            )  # fmt: skip
    session.add_all(created.values())
    for position, (a, b) in enumerate(brackets.first_round(players)):
        match = created[(1, position)]
        match.player1_id, match.player2_id = a, b
        if a is not None and b is not None:
            match.status = MatchStatus.READY.value
        else:  # a bye: the one player goes through without playing
            match.status = MatchStatus.BYE.value
            match.winner_id = a or b
            match.completed_at = now
            _advance(created, match)


def _advance(matches: dict[tuple[int, int], TournamentMatch], match: TournamentMatch) -> None:
    """Put a single-elimination match's winner into the next round's match."""
    following = matches.get((match.round + 1, match.position // 2))
    if following is None:
        return
    if match.position % 2 == 0:
        following.player1_id = match.winner_id
    else:
        following.player2_id = match.winner_id
    if following.player1_id is not None and following.player2_id is not None:
        following.status = MatchStatus.READY.value


def _draw_double_elimination(
    session: AsyncSession, tournament: Tournament, players: list[uuid.UUID], *, now: datetime
) -> None:
    """Both brackets and the grand final; round 1 filled by seed, its byes through at once.
    A bye in round 1 has no loser, so some losers-bracket places never fill: a player facing
    such a place goes through, and a match between two of them is void."""
    size = brackets.bracket_size(len(players))
    rounds = brackets.rounds_of(size)
    created = {
        key: TournamentMatch(
            tournament_id=tournament.id, round=key[0], position=key[1],
            status=MatchStatus.PENDING.value,
        )
        for key in brackets.double_elimination_keys(size)
    }  # fmt: skip
    session.add_all(created.values())
    for position, (a, b) in enumerate(brackets.first_round(players)):
        match = created[(1, position)]
        match.player1_id, match.player2_id = a, b
        if a is not None and b is not None:
            match.status = MatchStatus.READY.value
        else:
            match.status = MatchStatus.BYE.value
            match.winner_id = a or b
            match.completed_at = now
    for position in range(brackets.losers_round_size(size, 1) if rounds > 1 else 0):
        key = (brackets.LOSERS + 1, position)
        if _never_filled(created, key, 0) and _never_filled(created, key, 1):
            void = created[key]
            void.status, void.completed_at = MatchStatus.BYE.value, now
    for position in range(size >> 1):
        match = created[(1, position)]
        if match.status == MatchStatus.BYE:
            _send_winner(created, match, rounds, now=now)


def _never_filled(
    matches: dict[brackets.Key, TournamentMatch], key: brackets.Key, slot: int
) -> bool:
    """Whether a losers-bracket place stays empty (fed by a round-1 bye, which has no loser)."""
    round_, position = key
    if round_ == brackets.LOSERS + 1:
        return matches[(1, 2 * position + slot)].status == MatchStatus.BYE
    if round_ == brackets.LOSERS + 2 and slot == 0:
        feeder = (brackets.LOSERS + 1, position)
        return _never_filled(matches, feeder, 0) and _never_filled(matches, feeder, 1)
    return False


def _seat(
    matches: dict[brackets.Key, TournamentMatch],
    key: brackets.Key,
    slot: int,
    player: uuid.UUID | None,
    rounds: int,
    *,
    now: datetime,
) -> None:
    """Put a player into a double-elimination match: ready with both players, through at
    once when the other place never fills."""
    match = matches[key]
    if slot == 0:
        match.player1_id = player
    else:
        match.player2_id = player
    if match.player1_id is not None and match.player2_id is not None:
        match.status = MatchStatus.READY.value
    elif _never_filled(matches, key, 1 - slot):
        match.status = MatchStatus.BYE.value
        match.winner_id = player
        match.completed_at = now
        _send_winner(matches, match, rounds, now=now)


def _send_winner(
    matches: dict[brackets.Key, TournamentMatch],
    match: TournamentMatch,
    rounds: int,
    *,
    now: datetime,
) -> None:
    goes = brackets.winner_goes((match.round, match.position), rounds)
    if goes is not None and match.winner_id is not None:
        _seat(matches, goes[0], goes[1], match.winner_id, rounds, now=now)


def _advance_double(
    session: AsyncSession, matches: Sequence[TournamentMatch], match: TournamentMatch
) -> bool:
    """Move a decided double-elimination match's players on; True when that ends it all."""
    by_key = {(m.round, m.position): m for m in matches}
    rounds = _winners_rounds(matches)
    now = match.completed_at or utcnow()
    if match.round == brackets.GRAND_FINAL:
        if match.winner_id == match.player1_id:  # the winners bracket's champion: no reset
            return True
        # The losers bracket's champion handed the other their first loss: one more match.
        session.add(
            TournamentMatch(
                tournament_id=match.tournament_id, round=brackets.RESET, position=0,
                player1_id=match.player1_id, player2_id=match.player2_id,
                status=MatchStatus.READY.value,
            )
        )  # fmt: skip
        return False
    if match.round == brackets.RESET:
        return True
    _send_winner(by_key, match, rounds, now=now)
    loser = match.player2_id if match.winner_id == match.player1_id else match.player1_id
    drops = brackets.loser_goes((match.round, match.position), rounds)
    if drops is not None:
        _seat(by_key, drops[0], drops[1], loser, rounds, now=now)
    return False


def _double_elimination_places(
    participants: Sequence[TournamentParticipant], matches: Sequence[TournamentMatch]
) -> dict[uuid.UUID, int]:
    """A player is out at their second loss; places follow the order they went out in."""
    rounds = _winners_rounds(matches)
    losses: dict[uuid.UUID, int] = {}
    out_at: dict[uuid.UUID, int | None] = {p.user_id: None for p in participants}
    for m in sorted(matches, key=lambda m: (m.round, m.position)):
        if m.status != MatchStatus.COMPLETED or m.winner_id is None:
            continue
        loser = m.player2_id if m.winner_id == m.player1_id else m.player1_id
        if loser is None:
            continue
        losses[loser] = losses.get(loser, 0) + 1
        if losses[loser] == 2:
            out_at[loser] = brackets.elimination_stage((m.round, m.position), rounds)
    return brackets.places_by_stage(out_at)


async def report_result(
    session: AsyncSession,
    *,
    tournament_id: uuid.UUID,
    match_id: uuid.UUID,
    actor: User,
    winner_id: uuid.UUID,
    score: str | None,
) -> Tournament:
    """A match's result from the organiser, or from a player (decided once both players name
    the same winner; different winners leave it disputed, for the organiser)."""
    tournament = await get_tournament(session, tournament_id, lock=True)
    match = await session.get(TournamentMatch, match_id, populate_existing=True)
    if match is None or match.tournament_id != tournament.id:
        raise MatchNotFound()
    if match.status in {MatchStatus.COMPLETED, MatchStatus.BYE}:
        raise MatchFinished()
    if tournament.status != TournamentStatus.RUNNING:
        raise TournamentNotRunning()
    if match.status == MatchStatus.PENDING:
        raise MatchNotReady()
    players = {match.player1_id, match.player2_id}
    if winner_id not in players:
        raise ValidationFailed("The winner must be one of the match's two players")
    if actor.id == tournament.organiser_id:
        await _decide(session, tournament, match, winner_id, score)
        return tournament
    if actor.id not in players:
        raise PermissionDenied("Only the organiser or the match's players report its result")
    reports = dict(match.reports)
    reports[str(actor.id)] = str(winner_id)
    match.reports = reports
    if len(reports) == 2:
        if len(set(reports.values())) == 1:
            await _decide(session, tournament, match, winner_id, score)
        else:
            match.status = MatchStatus.DISPUTED.value
    if score is not None and match.status != MatchStatus.COMPLETED:
        match.score = score
    return tournament


async def _decide(
    session: AsyncSession,
    tournament: Tournament,
    match: TournamentMatch,
    winner_id: uuid.UUID,
    score: str | None,
) -> None:
    match.winner_id = winner_id
    match.score = score if score is not None else match.score
    match.status = MatchStatus.COMPLETED.value
    match.reports = {}
    match.completed_at = utcnow()
    leaderboard_events.member_changed(
        session, board=leaderboard_events.standings_board(tournament.id), user_id=winner_id
    )
    await session.flush()
    matches = await _matches(session, tournament.id)
    if tournament.format == TournamentFormat.SINGLE_ELIMINATION:
        _advance({(m.round, m.position): m for m in matches}, match)
        final_round = max(m.round for m in matches)
        if match.round == final_round:
            await _complete(session, tournament, matches)
    elif tournament.format == TournamentFormat.DOUBLE_ELIMINATION:
        if _advance_double(session, matches, match):
            await _complete(session, tournament, matches)
    elif all(m.status == MatchStatus.COMPLETED for m in matches):
        await _complete(session, tournament, matches)
    await session.flush()


async def _complete(
    session: AsyncSession, tournament: Tournament, matches: Sequence[TournamentMatch]
) -> None:
    """Place everyone and pay the prize pool out by the organiser's split."""
    participants = await _participants(session, tournament.id)
    wins, losses = _record(matches)
    never = len(participants) + 1
    if tournament.format == TournamentFormat.SINGLE_ELIMINATION:
        rounds = max(m.round for m in matches)
        knocked_out: dict[uuid.UUID, int] = {}
        for m in matches:
            if m.status == MatchStatus.COMPLETED and m.winner_id is not None:
                loser = m.player2_id if m.winner_id == m.player1_id else m.player1_id
                if loser is not None:
                    knocked_out[loser] = m.round
        for p in participants:
            p.placement = brackets.elimination_placement(knocked_out.get(p.user_id), rounds)
        ordered = sorted(participants, key=lambda p: (p.placement or never, p.seed or never))
    elif tournament.format == TournamentFormat.DOUBLE_ELIMINATION:
        places = _double_elimination_places(participants, matches)
        for p in participants:
            p.placement = places[p.user_id]
        ordered = sorted(participants, key=lambda p: (p.placement or never, p.seed or never))
    else:
        ordered = sorted(
            participants,
            key=lambda p: (-wins.get(p.user_id, 0), losses.get(p.user_id, 0), p.seed or never),
        )
        for n, p in enumerate(ordered, start=1):
            p.placement = n
    pool = await _pool(session, tournament)
    shares = brackets.prize_shares(pool, tournament.prize_split, len(ordered))
    legs = []
    for participant, share in zip(ordered, shares, strict=False):
        participant.prize_tokens = share
        if share:
            legs.append(Leg(wallet_of(participant.user_id), share))
    if legs:
        await ledger.post(
            session,
            kind=PRIZE,
            legs=[Leg(prize_pool_of(tournament.id), -pool), *legs],
            description=f"Prizes of {tournament.name}",
            details={"tournament_id": str(tournament.id)},
        )
    tournament.status = TournamentStatus.COMPLETED.value
    tournament.completed_at = utcnow()
    tournament.winner_id = ordered[0].user_id


async def set_match_channel(
    session: AsyncSession,
    *,
    tournament_id: uuid.UUID,
    match_id: uuid.UUID,
    actor: User,
    channel_ref: str | None,
) -> Tournament:
    """Name the channel that streams a match (or none), by the organiser."""
    tournament = await get_tournament(session, tournament_id, lock=True)
    _require_organiser(tournament, actor)
    match = await session.get(TournamentMatch, match_id)
    if match is None or match.tournament_id != tournament.id:
        raise MatchNotFound()
    if channel_ref is None:
        match.channel_id = None
    else:
        match.channel_id = (await channels.get_channel(session, channel_ref)).id
    return tournament
