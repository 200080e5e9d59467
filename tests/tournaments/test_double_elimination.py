"""Double elimination: the winners and losers brackets, byes that leave losers-bracket places
empty, the grand final and its reset, placements and prizes."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
from fastapi import FastAPI

from stagecast.tournaments import brackets
from tests.factories import Account, register
from tests.leaderboards.test_leaderboards import fund
from tests.tournaments.test_tournaments import API, balance, books, create, join


def matches_of(tournament: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for r in tournament["rounds"] for m in r["matches"]]


async def play(
    client: httpx.AsyncClient, tournament: dict[str, Any], organiser: Account, *, upset: bool
) -> dict[str, Any]:
    """The organiser reports every ready match until none is left: the better seed wins,
    except in the grand final when `upset` (the losers bracket's champion wins it)."""
    for _ in range(64):  # more than any bracket here has matches: a stuck one fails the test
        ready = [m for m in matches_of(tournament) if m["status"] == "ready"]
        if not ready:
            return tournament
        match = ready[0]
        players = sorted((match["player1"], match["player2"]), key=lambda p: p["seed"])
        winner = players[0]
        if upset and match["round"] == brackets.GRAND_FINAL:
            winner = match["player2"]
        answer = await client.post(
            f"{API}/{tournament['id']}/matches/{match['id']}/result",
            json={"winner_id": winner["user_id"]},
            headers=organiser.headers,
        )
        assert answer.status_code == 200, answer.text
        tournament = answer.json()
    raise AssertionError("the matches never ran out")


async def started(
    client: httpx.AsyncClient, players: int, **fields: Any
) -> tuple[Account, list[Account], dict[str, Any]]:
    organiser = await register(client)
    accounts = [await register(client) for _ in range(players)]
    tournament = await create(
        client, organiser, format="double_elimination", max_participants=players, **fields
    )
    for account in accounts:
        if tournament["entry_fee_tokens"]:
            await fund(client, account, 1000)
        answer = await join(client, tournament, account)
        assert answer.status_code == 200, answer.text
    answer = await client.post(f"{API}/{tournament['id']}/start", headers=organiser.headers)
    assert answer.status_code == 200, answer.text
    return organiser, accounts, answer.json()


async def test_eight_players_through_both_brackets_and_a_reset(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    organiser, players, bracket = await started(
        client, 8, entry_fee_tokens=100, prize_split=[50, 30, 20]
    )
    shape = [(r["round"], r["name"], r["bracket"], len(r["matches"])) for r in bracket["rounds"]]
    assert shape == [
        (1, "Winners round 1", "winners", 4),
        (2, "Winners semi-finals", "winners", 2),
        (3, "Winners final", "winners", 1),
        (101, "Losers round 1", "losers", 2),
        (102, "Losers round 2", "losers", 2),
        (103, "Losers round 3", "losers", 1),
        (104, "Losers final", "losers", 1),
        (200, "Grand final", "grand_final", 1),
    ]
    by_seed = {s["seed"]: s["user_id"] for s in bracket["standings"]}
    # A losers-bracket match waits for its players.
    waiting = next(m for m in matches_of(bracket) if m["round"] == 101)
    early = await client.post(
        f"{API}/{bracket['id']}/matches/{waiting['id']}/result",
        json={"winner_id": by_seed[1]},
        headers=organiser.headers,
    )
    assert (early.status_code, early.json()["code"]) == (409, "MATCH_NOT_READY")

    done = await play(client, bracket, organiser, upset=True)
    assert (done["status"], done["winner_id"]) == ("completed", by_seed[1])
    names = [r["name"] for r in done["rounds"]]
    assert names[-2:] == ["Grand final", "Grand final reset"]
    played = [m for m in matches_of(done) if m["status"] == "completed"]
    assert len(played) == 2 * 8 - 1  # every player but the champion lost twice, plus the reset
    standings = {s["user_id"]: s for s in done["standings"]}
    # The champion lost once (the first grand final); everyone else twice.
    assert sorted(s["losses"] for s in standings.values()) == [1, *([2] * 7)]
    assert all(s["eliminated"] for u, s in standings.items() if u != by_seed[1])
    # The better seed won every match but the first grand final: seed 2 came back through
    # the losers bracket; 7 and 8 went out first, then 5 and 6, 4, 3.
    places = {seed: standings[user]["placement"] for seed, user in by_seed.items()}
    assert places == {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 5, 7: 7, 8: 7}
    prizes = {seed: standings[user]["prize_tokens"] for seed, user in by_seed.items()}
    assert (prizes[1], prizes[2], prizes[3]) == (400, 240, 160)
    assert sum(prizes.values()) == 800
    wallets = {p.id: await balance(client, p) for p in players}
    assert wallets[by_seed[1]] == 900 + 400
    assert Counter(wallets.values())[900] == 5
    await books(app)
    # No rematch in the losers bracket of players who met in the winners bracket's round 1.
    first = {frozenset((m["player1"]["user_id"], m["player2"]["user_id"]))
             for m in matches_of(done) if m["round"] == 1}  # fmt: skip
    losers_first = {frozenset((m["player1"]["user_id"], m["player2"]["user_id"]))
                    for m in matches_of(done) if m["round"] == 101}  # fmt: skip
    assert not first & losers_first


async def test_five_players_byes_leave_losers_places_empty(client: httpx.AsyncClient) -> None:
    organiser, _, bracket = await started(client, 5)
    by_seed = {s["seed"]: s["user_id"] for s in bracket["standings"]}
    losers_first = [m for m in matches_of(bracket) if m["round"] == 101]
    # Seeds 2 and 3 had byes in round 1, which have no losers: nobody will ever play the
    # losers' match they feed. The first waits for the loser of 4 against 5 (1's bye feeds
    # its other place).
    assert [m["status"] for m in losers_first] == ["pending", "bye"]
    assert (losers_first[1]["player1"], losers_first[1]["player2"]) == (None, None)
    void = await client.post(
        f"{API}/{bracket['id']}/matches/{losers_first[1]['id']}/result",
        json={"winner_id": by_seed[1]},
        headers=organiser.headers,
    )
    assert (void.status_code, void.json()["code"]) == (409, "MATCH_FINISHED")

    done = await play(client, bracket, organiser, upset=False)
    assert (done["status"], done["winner_id"]) == ("completed", by_seed[1])
    assert "Grand final reset" not in [r["name"] for r in done["rounds"]]
    played = [m for m in matches_of(done) if m["status"] == "completed"]
    assert len(played) == 2 * 5 - 2  # no reset: the champion never lost
    standings = {s["user_id"]: s for s in done["standings"]}
    places = {seed: standings[user]["placement"] for seed, user in by_seed.items()}
    assert places == {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}
    # Seed 5 lost to 4 in round 1, then got through the empty place in losers round 1.
    first_losers = next(m for m in matches_of(done) if m["round"] == 101)
    assert (first_losers["status"], first_losers["winner_id"]) == ("bye", by_seed[5])
    assert sorted(s["losses"] for s in standings.values()) == [0, 2, 2, 2, 2]


async def test_two_players_meet_again_in_the_grand_final(client: httpx.AsyncClient) -> None:
    organiser, _, bracket = await started(client, 2)
    assert [r["name"] for r in bracket["rounds"]] == ["Winners final", "Grand final"]
    done = await play(client, bracket, organiser, upset=True)
    by_seed = {s["seed"]: s["user_id"] for s in done["standings"]}
    assert (done["status"], done["winner_id"]) == ("completed", by_seed[1])
    names = [r["name"] for r in done["rounds"]]
    assert names == ["Winners final", "Grand final", "Grand final reset"]
    assert {s["seed"]: s["placement"] for s in done["standings"]} == {1: 1, 2: 2}
