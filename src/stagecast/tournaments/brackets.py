"""The shape of a bracket, in pure functions: seeding order, byes, pairings, prize shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def bracket_size(participants: int) -> int:
    """The power of two a single-elimination bracket of this many needs."""
    size = 1
    while size < participants:
        size *= 2
    return max(size, 2)


def seed_order(size: int) -> list[int]:
    """Seeds in slot order for a bracket of `size` (a power of two): 1 meets `size`, and the
    top two seeds can meet only in the final. For 8: [1, 8, 4, 5, 2, 7, 3, 6]."""
    order = [1, 2]
    while len(order) < size:
        total = 2 * len(order) + 1
        order = [seed for s in order for seed in (s, total - s)]
    return order[:size]


def first_round(seeded: Sequence[T]) -> list[tuple[T | None, T | None]]:
    """Round 1's pairs for players in seed order; a missing player (None) is a bye, and byes go
    to the top seeds."""
    size = bracket_size(len(seeded))
    slots = [seeded[s - 1] if s <= len(seeded) else None for s in seed_order(size)]
    return [(slots[i], slots[i + 1]) for i in range(0, size, 2)]


def rounds_of(size: int) -> int:
    count = 0
    while (1 << count) < size:
        count += 1
    return count


def round_robin(players: Sequence[T]) -> list[list[tuple[T, T]]]:
    """Every pair once, in rounds where nobody plays twice (the circle method)."""
    circle: list[T | None] = list(players)
    if len(circle) % 2:
        circle.append(None)  # who meets None sits the round out
    rounds = []
    for _ in range(len(circle) - 1):
        half = len(circle) // 2
        pairs = []
        for i in range(half):
            a, b = circle[i], circle[-1 - i]
            if a is not None and b is not None:
                pairs.append((a, b))
        rounds.append(pairs)
        circle = [circle[0], circle[-1], *circle[1:-1]]
    return rounds


def elimination_placement(eliminated_in: int | None, rounds: int) -> int:
    """1 for the champion; a player knocked out in round r shares place 2^(rounds - r) + 1."""
    if eliminated_in is None:
        return 1
    return (1 << (rounds - eliminated_in)) + 1


def prize_shares(pool: int, split: Sequence[int], places: int) -> list[int]:
    """Tokens for each of the first `places` finishers: the split's percentages, rounded down;
    what rounding leaves, and the shares of places nobody took, go to first place."""
    shares = [pool * percent // 100 for percent in split[:places]]
    if shares:
        shares[0] += pool - sum(shares)
    return shares


# --- double elimination ---------------------------------------------------------------------
#
# Matches are numbered by round: the winners bracket's rounds 1…R as in single elimination,
# the losers bracket's rounds LOSERS + 1…LOSERS + 2(R - 1), the grand final GRAND_FINAL and
# its reset GRAND_FINAL + 1 (played only when the losers bracket's champion wins the first).
# A slot is 0 (player 1) or 1 (player 2).

LOSERS = 100
GRAND_FINAL = 200
RESET = GRAND_FINAL + 1

Key = tuple[int, int]  # (round, position)


def losers_rounds(rounds: int) -> int:
    """How many rounds the losers bracket of an R-round winners bracket has."""
    return 2 * (rounds - 1)


def losers_round_size(size: int, k: int) -> int:
    """Matches in losers round k (from 1) of a bracket of `size` slots."""
    return size >> ((k + 1) // 2 + 1)


def winner_goes(key: Key, rounds: int) -> tuple[Key, int] | None:
    """Where the winner of a double-elimination match plays next (None: the grand final's
    winners decide by themselves, see grand_final_decided)."""
    round_, position = key
    last_losers = LOSERS + losers_rounds(rounds)
    if round_ < rounds:
        return (round_ + 1, position // 2), position % 2
    if round_ == rounds:
        return (GRAND_FINAL, 0), 0
    if LOSERS < round_ <= last_losers:
        k = round_ - LOSERS
        if round_ == last_losers:
            return (GRAND_FINAL, 0), 1
        if k % 2:  # odd rounds feed the next (drop-in) round one to one
            return (round_ + 1, position), 0
        return (round_ + 1, position // 2), position % 2
    return None


def loser_goes(key: Key, rounds: int) -> tuple[Key, int] | None:
    """Where the loser of a winners-bracket match drops into the losers bracket (None: a
    loser of the losers bracket or of the grand final is out)."""
    round_, position = key
    if round_ > rounds:
        return None
    if rounds == 1:  # two players: the loser of the only match goes straight to the final
        return (GRAND_FINAL, 0), 1
    if round_ == 1:
        return (LOSERS + 1, position // 2), position % 2
    return (LOSERS + 2 * (round_ - 1), position), 1


def double_elimination_keys(size: int) -> list[Key]:
    """Every match drawn at the start (the reset is added when it is needed)."""
    rounds = rounds_of(size)
    keys = [(r, p) for r in range(1, rounds + 1) for p in range(size >> r)]
    for k in range(1, losers_rounds(rounds) + 1):
        keys += [(LOSERS + k, p) for p in range(losers_round_size(size, k))]
    return [*keys, (GRAND_FINAL, 0)]


def elimination_stage(key: Key, rounds: int) -> int:
    """The order in which double elimination knocks players out: losers round k at stage k,
    the grand final (or its reset) last."""
    round_, _ = key
    if round_ >= GRAND_FINAL:
        return losers_rounds(rounds) + 1
    return round_ - LOSERS


def places_by_stage(stages: dict[T, int | None]) -> dict[T, int]:
    """Placements from the stage each player was knocked out at (None: never, the champion):
    a player shares the place after everyone knocked out later."""
    out = {}
    for player, stage in stages.items():
        if stage is None:
            out[player] = 1
        else:
            later = sum(1 for s in stages.values() if s is not None and s > stage)
            out[player] = 2 + later
    return out
