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
