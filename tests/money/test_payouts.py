"""Seed 003's seller side: transfers (admin and the seller's own), the seller balance's
`connected`, and the onboarding answer's `onboarding_url`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from stagecast.money.models import Payout
from stagecast.money.providers import SandboxPayouts
from stagecast.runtime import Runtime
from tests.factories import Account, make_admin, register
from tests.money.test_earnings import earner
from tests.test_pagination import CountPlans, check_counts_use_indexes

SEED_TRANSFER_FIELDS = {
    "id", "seller_id", "order_id", "amount_cents", "platform_fee_cents", "currency", "status",
    "retry_count", "next_retry_at", "created_at",
}  # fmt: skip


class Transfers:
    """Two creators' payouts in every state, created at known times."""

    def __init__(self, seller: Account, other: Account, admin: Account, ids: dict[str, str]):
        self.seller, self.other, self.admin, self.ids = seller, other, admin, ids


async def _payout(client: httpx.AsyncClient, who: Account, destination: str | None) -> str:
    body: dict[str, Any] = {"tokens": 5000}
    if destination:
        body["destination"] = destination
    asked = await client.post("/api/v1/payouts/request", json=body, headers=who.headers)
    assert asked.status_code == 201, asked.text
    return str(asked.json()["id"])


@pytest.fixture
async def transfers(client: httpx.AsyncClient, app: FastAPI) -> Transfers:
    runtime: Runtime = app.state.runtime
    runtime.payout_provider = SandboxPayouts(flaky={"acct_flaky"}, refused={"acct_refused"})
    seller, _ = await earner(client, app, 30000)
    other, _ = await earner(client, app, 10000)
    admin = await make_admin(client, app)
    ids = {
        "paid": await _payout(client, seller, None),
        "failed": await _payout(client, seller, "acct_refused"),
        "retrying": await _payout(client, seller, "acct_flaky"),
        "requested": await _payout(client, seller, None),
        "rejected": await _payout(client, seller, None),
        "other_paid": await _payout(client, other, None),
    }
    for name in ("paid", "failed", "retrying", "other_paid"):
        sent = await client.post(
            f"/api/v1/admin/payouts/{ids[name]}/approve", headers=admin.headers
        )
        assert sent.json()["status"] == name.removeprefix("other_"), sent.text
    rejected = await client.post(
        f"/api/v1/admin/payouts/{ids['rejected']}/reject", json={"reason": "no"},
        headers=admin.headers,
    )  # fmt: skip
    assert rejected.status_code == 200, rejected.text
    created = {
        "paid": datetime(2026, 2, 1, 10, tzinfo=UTC),
        "failed": datetime(2026, 2, 23, 12, tzinfo=UTC),
        "retrying": datetime(2026, 2, 24, tzinfo=UTC),
        "other_paid": datetime(2026, 3, 1, 8, tzinfo=UTC),
    }
    async with runtime.db.session() as session, session.begin():
        for name, when in created.items():
            (await session.get_one(Payout, uuid.UUID(ids[name]))).created_at = when
    return Transfers(seller, other, admin, ids)


async def listed(
    client: httpx.AsyncClient, who: Account, path: str, query: str = ""
) -> tuple[list[str], int]:
    answer = await client.get(f"{path}{query}", headers=who.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"transfers", "total", "limit", "offset"}
    return [t["id"] for t in body["transfers"]], body["total"]


async def test_admin_transfers_filter_for_real(
    client: httpx.AsyncClient, transfers: Transfers
) -> None:
    admin, ids = transfers.admin, transfers.ids
    path = "/api/v1/admin/transfers"
    # The seed's own example: a paid transfer is not a failed one.
    answer = await client.get(f"{path}?status=failed&limit=50&offset=0", headers=admin.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["total"], body["limit"], body["offset"]) == (1, 50, 0)
    (failed,) = body["transfers"]
    assert set(failed) >= SEED_TRANSFER_FIELDS
    assert failed["id"] == ids["failed"]
    assert failed["seller_id"] == transfers.seller.id
    assert (failed["status"], failed["retry_count"], failed["next_retry_at"]) == ("failed", 0, None)
    assert (failed["amount_cents"], failed["platform_fee_cents"]) == (5000, 0)
    assert (failed["currency"], failed["order_id"], failed["tokens"]) == ("USD", None, 5000)
    assert failed["created_at"].startswith("2026-02-23T12:00:00")
    assert "refuses" in failed["failure_reason"]

    newest_first = [ids["other_paid"], ids["retrying"], ids["failed"], ids["paid"]]
    newest_first.sort(key=uuid.UUID, reverse=True)  # by id (v7: when they were requested)
    assert await listed(client, admin, path) == (newest_first, 4)  # requested, rejected: not sent
    paid = sorted([ids["paid"], ids["other_paid"]], key=uuid.UUID, reverse=True)
    assert await listed(client, admin, path, "?status=paid") == (paid, 2)
    assert await listed(client, admin, path, "?status=completed") == (paid, 2)  # seed 003's name
    assert await listed(client, admin, path, "?status=retrying") == ([ids["retrying"]], 1)
    assert await listed(client, admin, path, "?status=approved") == ([], 0)
    assert await listed(client, admin, path, f"?seller_id={transfers.other.id}") == (
        [ids["other_paid"]], 1,
    )  # fmt: skip
    seller_paid = f"?seller_id={transfers.seller.id}&status=paid"
    assert await listed(client, admin, path, seller_paid) == ([ids["paid"]], 1)
    assert await listed(client, admin, path, "?limit=2&offset=1") == (newest_first[1:3], 4)
    assert await listed(client, admin, path, "?limit=2&offset=8") == ([], 4)

    # `from` and `to`: a day is the whole day (UTC); an instant is exact, `to` exclusive.
    day = "?from=2026-02-23&to=2026-02-23"
    assert await listed(client, admin, path, day) == ([ids["failed"]], 1)
    since = await listed(client, admin, path, "?from=2026-02-23T12:00:00Z")
    assert sorted(since[0]) == sorted([ids["failed"], ids["retrying"], ids["other_paid"]])
    before = await listed(client, admin, path, "?to=2026-02-24T00:00:00Z")
    assert sorted(before[0]) == sorted([ids["paid"], ids["failed"]])
    noon = await listed(client, admin, path, "?from=2026-02-23T13:00:00%2B01:00&status=failed")
    assert noon == ([ids["failed"]], 1)  # 13:00+01:00 is the 12:00 UTC it was made at
    february = await listed(client, admin, path, "?from=2026-02-01&to=2026-02-28&status=paid")
    assert february == ([ids["paid"]], 1)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=lost", "status"),
        ("status=requested", "status"),  # not a transfer yet: /admin/payouts lists those
        ("seller_id=someone", "seller_id"),
        ("from=yesterday", "from"),
        ("to=2026-02-30", "to"),
        ("from=2026-03-02&to=2026-03-01", "to"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("offset=-1", "offset"),
        ("offset=100001", "offset"),
    ],
)
async def test_transfer_filters_refuse_bad_input(
    client: httpx.AsyncClient, app: FastAPI, query: str, field: str
) -> None:
    admin = await make_admin(client, app)
    seller = await register(client)
    lists = [("/api/v1/admin/transfers", admin)]
    if field != "seller_id":  # the seller's own list takes no seller
        lists.append(("/api/v1/sell/transfers", seller))
    for path, who in lists:
        answer = await client.get(f"{path}?{query}", headers=who.headers)
        assert answer.status_code == 422, (path, query, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "VALIDATION_ERROR"
        assert field in {e["field"] for e in answer.json()["errors"]}, answer.json()


async def test_transfers_are_for_admins_and_their_sellers(
    client: httpx.AsyncClient, transfers: Transfers
) -> None:
    seller, other, ids = transfers.seller, transfers.other, transfers.ids
    refused = await client.get("/api/v1/admin/transfers", headers=seller.headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "PERMISSION_DENIED")
    assert (await client.get("/api/v1/admin/transfers")).status_code == 401
    assert (await client.get("/api/v1/sell/transfers")).status_code == 401

    mine = "/api/v1/sell/transfers"
    own = sorted([ids["paid"], ids["failed"], ids["retrying"]], key=uuid.UUID, reverse=True)
    assert await listed(client, seller, mine) == (own, 3)
    assert await listed(client, seller, mine, "?status=failed&limit=50&offset=0") == (
        [ids["failed"]], 1,
    )  # fmt: skip
    assert await listed(client, seller, mine, "?from=2026-02-24") == ([ids["retrying"]], 1)
    assert await listed(client, seller, mine, "?limit=1&offset=2") == (own[2:], 3)
    # Another seller's id changes nothing: the list is always your own.
    assert await listed(client, seller, mine, f"?seller_id={other.id}") == (own, 3)
    assert await listed(client, other, mine) == ([ids["other_paid"]], 1)
    stranger = await register(client)
    assert await listed(client, stranger, mine) == ([], 0)


async def test_a_retried_transfer_counts_its_retries(
    client: httpx.AsyncClient, transfers: Transfers
) -> None:
    admin, retrying = transfers.admin, transfers.ids["retrying"]
    again = await client.post(f"/api/v1/admin/transfers/{retrying}/retry", headers=admin.headers)
    assert again.json()["status"] == "retrying", again.text
    answer = await client.get("/api/v1/admin/transfers?status=retrying", headers=admin.headers)
    (shown,) = answer.json()["transfers"]
    assert (shown["id"], shown["retry_count"]) == (retrying, 1)
    assert shown["next_retry_at"] is not None


async def test_transfer_totals_are_counted_from_an_index(
    client: httpx.AsyncClient, app: FastAPI, transfers: Transfers
) -> None:
    runtime: Runtime = app.state.runtime
    if runtime.db.dialect != "sqlite":
        pytest.skip("reads SQLite's query plans")
    plans = CountPlans()
    event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", plans)
    try:
        for query in (
            "", "?status=failed", f"?seller_id={transfers.seller.id}", "?from=2026-02-23",
            "?to=2026-02-24&status=paid", f"?seller_id={transfers.other.id}&from=2026-01-01",
        ):  # fmt: skip
            await listed(client, transfers.admin, "/api/v1/admin/transfers", query)
        await listed(client, transfers.seller, "/api/v1/sell/transfers", "?status=paid")
    finally:
        event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", plans)
    assert len(plans.statements) >= 7
    await check_counts_use_indexes(runtime, plans.statements)


async def test_sandbox_onboarding_answers_onboarding_url_and_connects(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """Seed 003's `POST /sell/connect/onboard` and `GET /sell/balance` with the sandbox, whose
    onboarding has nothing to fill in."""
    creator, _ = await earner(client, app, 6000)
    before = await client.get("/api/v1/sell/balance", headers=creator.headers)
    assert before.status_code == 200, before.text
    balance = before.json()
    assert balance["connected"] is False
    # Seed 003's amounts are cents: 6000 tokens at 100 a dollar are $60.00.
    assert (balance["available"], balance["pending"]) == (6000, 0)
    assert (balance["available_tokens"], balance["available_amount"]) == (6000, 60.0)

    onboard = await client.post("/api/v1/sell/connect/onboard", headers=creator.headers)
    assert onboard.status_code == 200, onboard.text
    answer = onboard.json()
    assert answer["onboarding_url"] == answer["url"] == "http://testserver/dashboard/payouts"
    assert answer["account_ref"] == f"sbx_acct_{creator.id}"
    assert answer["connected"] is True
    after = (await client.get("/api/v1/sell/balance", headers=creator.headers)).json()
    assert after["connected"] is True
    asked = await client.post(
        "/api/v1/payouts/request", json={"tokens": 5000}, headers=creator.headers
    )
    assert asked.status_code == 201, asked.text
    held = (await client.get("/api/v1/sell/balance", headers=creator.headers)).json()
    assert (held["available"], held["pending"], held["connected"]) == (1000, 5000, True)

    again = await client.post("/api/v1/sell/connect/onboard", headers=creator.headers)
    assert again.json()["account_ref"] == answer["account_ref"]
    someone = await register(client)
    assert (await client.get("/api/v1/sell/balance", headers=someone.headers)).json()[
        "connected"
    ] is False  # another creator's account is not theirs
    assert (await client.get("/api/v1/sell/balance")).status_code == 401
    assert (await client.post("/api/v1/sell/connect/onboard")).status_code == 401


async def test_without_payouts_nothing_is_connected(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    runtime: Runtime = app.state.runtime
    runtime.payout_provider = None
    creator = await register(client)
    balance = await client.get("/api/v1/sell/balance", headers=creator.headers)
    assert (balance.status_code, balance.json()["connected"]) == (200, False)
    onboard = await client.post("/api/v1/sell/connect/onboard", headers=creator.headers)
    assert (onboard.status_code, onboard.json()["code"]) == (404, "NOT_FOUND")
