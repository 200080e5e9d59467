"""The wallet: balance, history, buying tokens, seed 002's transfer."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from stagecast.accounts.deps import CurrentUser
from stagecast.admin import flags
from stagecast.channels import service as channels
from stagecast.deps import PageDep, ReadSessionDep, RuntimeDep, SessionDep
from stagecast.errors import NotFound, ValidationFailed, problem_responses
from stagecast.money import purchases
from stagecast.money import service as money
from stagecast.money.idempotency import REPLAYED_HEADER
from stagecast.money.providers import SandboxProvider
from stagecast.money.routes.deps import (
    MOVES,
    IdempotencyKey,
    move_once,
    payment_provider,
    payments_limit,
    request_fingerprint,
    tips_limit,
)
from stagecast.money.routes.webhooks import take_webhook
from stagecast.money.schemas import BalanceOut, TransactionOut, TransferIn
from stagecast.pagination import Page, make_page

router = APIRouter(tags=["money"])


@router.get("/wallet/balance", responses=problem_responses(401))
async def wallet_balance(
    user: CurrentUser, session: ReadSessionDep, runtime: RuntimeDep
) -> BalanceOut:
    """Your spendable tokens, your earnings and what pending payouts hold."""
    async with runtime.db.one_read(session):  # the three balances are one statement
        return await money.balances(session, runtime.settings.money, user.id)


@router.get("/wallet/transactions", responses=problem_responses(401, 422))
async def wallet_transactions(
    user: CurrentUser, session: ReadSessionDep, runtime: RuntimeDep, page: PageDep
) -> Page[TransactionOut]:
    """Every entry of your wallet and earnings, newest first, with the balance after it."""
    async with session.begin():
        rows, cursor = await money.list_transactions(
            session, runtime.settings.money, user_id=user.id, params=page
        )
    return make_page(rows, cursor)


class BuyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: StrictInt = Field(description="one of the packages (GET /wallet/packages)")
    success_url: str | None = Field(default=None, max_length=2000)
    cancel_url: str | None = Field(default=None, max_length=2000)


@router.get("/wallet/packages")
async def wallet_packages(runtime: RuntimeDep) -> dict[str, Any]:
    settings = runtime.settings.money
    return {
        "currency": settings.currency,
        "packages": [
            {"tokens": t, "amount_cents": purchases.price_cents(settings, t)}
            for t in settings.packages
        ],
    }


@router.post(
    "/wallet/buy", status_code=201, dependencies=[payments_limit],
    responses=problem_responses(401, 402, 404, 409, 422, 429, 502),
)  # fmt: skip
async def wallet_buy(
    body: BuyIn, request: Request, user: CurrentUser, runtime: RuntimeDep,
    key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Start buying a package: answers the checkout address; tokens arrive when it is paid.
    A 502 leaves the purchase to be resumed: repeat the request with its `Idempotency-Key`."""
    base = str(request.base_url).rstrip("/")
    bought = await purchases.buy_tokens(
        runtime.db, runtime.settings.money, payment_provider(runtime), buyer_id=user.id,
        tokens=body.tokens, success_url=body.success_url or f"{base}/wallet?purchase=done",
        cancel_url=body.cancel_url or f"{base}/wallet?purchase=cancelled", key=key,
        request_hash=request_fingerprint(request, body),
    )  # fmt: skip
    headers = {REPLAYED_HEADER: "true"} if bought.replayed else None
    return JSONResponse(bought.body, status_code=201, headers=headers)


@router.get("/wallet/purchases/{purchase_id}", responses=problem_responses(401, 404))
async def wallet_purchase(
    purchase_id: uuid.UUID, user: CurrentUser, session: ReadSessionDep
) -> dict[str, Any]:
    async with session.begin():
        purchase = await purchases.get_own_purchase(session, user=user, purchase_id=purchase_id)
        return purchases.present_purchase(purchase)


@router.post("/wallet/sandbox/checkout/{purchase_id}", responses=problem_responses(401, 404))
async def sandbox_checkout(
    purchase_id: uuid.UUID, user: CurrentUser, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Development only: "pay" a sandbox purchase. The sandbox signs a webhook and the server
    takes it exactly as it takes Stripe's: nothing real is charged."""
    provider = runtime.payments
    if not isinstance(provider, SandboxProvider):
        raise NotFound("The sandbox is not the payment provider here")
    async with session.begin():
        purchase = await purchases.get_own_purchase(session, user=user, purchase_id=purchase_id)
        payload, headers = provider.build_event(
            "payment_succeeded",
            purchase_id=str(purchase.id),
            provider_ref=purchase.provider_ref or "",
            amount_cents=purchase.amount_cents,
            currency=purchase.currency,
        )
    outcome = await take_webhook(session, provider, payload, headers)
    async with session.begin():
        purchase = await purchases.get_own_purchase(session, user=user, purchase_id=purchase_id)
        return {**purchases.present_purchase(purchase), "outcome": outcome}


@router.post("/wallet/transfer", status_code=201, dependencies=[tips_limit], responses=MOVES)
async def wallet_transfer(
    body: TransferIn, request: Request, user: CurrentUser, session: SessionDep, runtime: RuntimeDep,
    key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Seed 002: send tokens to a performer (a tip on their stream, else a donation)."""
    await flags.require(runtime, "tips")
    settings = runtime.settings.money

    async def action() -> tuple[int, dict[str, Any]]:
        if body.stream_id is not None:
            made = await money.tip_stream(
                session, settings, sender=user, stream_id=body.stream_id, tokens=body.tokens,
                message=body.message, is_private=body.is_private,
            kyc_settings=runtime.settings.kyc,
            )  # fmt: skip
        elif body.to_user_id is not None:
            channel = await channels.channel_of_owner(session, body.to_user_id)
            if channel is None:
                raise NotFound("That user has no channel to send tokens to")
            made = await money.contribute(
                session, settings, kind="donation", sender=user, channel=channel, stream=None,
                tokens=body.tokens, message=body.message, is_private=body.is_private,
            kyc_settings=runtime.settings.kyc,
            )  # fmt: skip
        else:
            raise ValidationFailed("Name the stream (stream_id) or the performer (to_user_id)")
        return 201, money.present_contribution(made, user, viewer_id=user.id).model_dump(
            mode="json"
        )

    return await move_once(request, session, user.id, key, body, action)
