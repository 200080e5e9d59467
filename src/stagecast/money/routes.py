"""HTTP routes of money: wallet, purchases and webhooks, tips, donations, gifts,
subscriptions, revenue and payouts. Every money-moving POST takes `Idempotency-Key`."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from stagecast.accounts import service as accounts
from stagecast.accounts.deps import AdminUser, CurrentUser, OptionalUser
from stagecast.accounts.models import User
from stagecast.channels import service as channels
from stagecast.channels.models import Channel
from stagecast.db.base import utcnow
from stagecast.deps import PageDep, ReadSessionDep, RuntimeDep, SessionDep
from stagecast.errors import AppError, NotFound, ValidationFailed, problem_responses
from stagecast.money import payouts, purchases, subscriptions
from stagecast.money import service as money
from stagecast.money.idempotency import Action, fingerprint, run_once
from stagecast.money.models import Payout, Subscription, SubscriptionTier
from stagecast.money.providers import (
    PaymentProvider,
    PayoutProvider,
    SandboxProvider,
    WebhookRejected,
)
from stagecast.money.schemas import (
    BalanceOut,
    ContributionOut,
    DonationIn,
    GiftIn,
    GiftOut,
    SubscriberOut,
    TipIn,
    TransactionOut,
    TransferIn,
)
from stagecast.pagination import Page, make_page
from stagecast.ratelimit import rate_limit
from stagecast.runtime import Runtime
from stagecast.streams import service as streams

router = APIRouter(tags=["money"])
webhooks = APIRouter(prefix="/webhooks", tags=["money"])

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="the same key and body answer the same, once"),
]
_tips_limit = Depends(rate_limit("tips"))
_payments_limit = Depends(rate_limit("payments"))
_MOVES = problem_responses(401, 402, 404, 409, 422, 429)


class WebhookSignatureInvalid(AppError):
    status, code, title = 400, "WEBHOOK_SIGNATURE_INVALID", "The webhook signature is invalid"


def _payout_provider(runtime: Runtime) -> PayoutProvider:
    if runtime.payout_provider is None:
        raise NotFound("Payouts are not configured")
    return runtime.payout_provider


def _payments(runtime: Runtime) -> PaymentProvider:
    if runtime.payments is None:
        raise NotFound("Payments are not configured")
    return runtime.payments


async def _moving(
    request: Request,
    session: SessionDep,
    user_id: uuid.UUID,
    key: str | None,
    body: BaseModel | dict[str, Any],
    action: Action,
) -> JSONResponse:
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    return await run_once(
        session,
        user_id=user_id,
        key=key,
        request_hash=fingerprint(request.method, request.url.path, data),
        action=action,
    )


# --- wallet ----------------------------------------------------------------------------------


@router.get("/wallet/balance", responses=problem_responses(401))
async def wallet_balance(
    user: CurrentUser, session: ReadSessionDep, runtime: RuntimeDep
) -> BalanceOut:
    """Your spendable tokens, your earnings and what pending payouts hold."""
    async with session.begin():
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


@router.post("/wallet/buy", status_code=201, dependencies=[_payments_limit], responses=_MOVES)
async def wallet_buy(
    body: BuyIn, request: Request, user: CurrentUser, session: SessionDep, runtime: RuntimeDep,
    key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Start buying a package: answers the checkout address; tokens arrive when it is paid."""
    provider = _payments(runtime)
    base = str(request.base_url).rstrip("/")

    async def action() -> tuple[int, dict[str, Any]]:
        purchase, url = await purchases.start_purchase(
            session, runtime.settings.money, provider, buyer=user, tokens=body.tokens,
            success_url=body.success_url or f"{base}/wallet?purchase=done",
            cancel_url=body.cancel_url or f"{base}/wallet?purchase=cancelled",
        )  # fmt: skip
        return 201, purchases.present_purchase(purchase, url)

    return await _moving(request, session, user.id, key, body, action)


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
    outcome = await _take_webhook(session, provider, payload, headers)
    async with session.begin():
        purchase = await purchases.get_own_purchase(session, user=user, purchase_id=purchase_id)
        return {**purchases.present_purchase(purchase), "outcome": outcome}


@router.post("/wallet/transfer", status_code=201, dependencies=[_tips_limit], responses=_MOVES)
async def wallet_transfer(
    body: TransferIn, request: Request, user: CurrentUser, session: SessionDep, runtime: RuntimeDep,
    key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Seed 002: send tokens to a performer (a tip on their stream, else a donation)."""
    settings = runtime.settings.money

    async def action() -> tuple[int, dict[str, Any]]:
        if body.stream_id is not None:
            made = await money.tip_stream(
                session, settings, sender=user, stream_id=body.stream_id, tokens=body.tokens,
                message=body.message, is_private=body.is_private,
            )  # fmt: skip
        elif body.to_user_id is not None:
            channel = await channels.channel_of_owner(session, body.to_user_id)
            if channel is None:
                raise NotFound("That user has no channel to send tokens to")
            made = await money.contribute(
                session, settings, kind="donation", sender=user, channel=channel, stream=None,
                tokens=body.tokens, message=body.message, is_private=body.is_private,
            )  # fmt: skip
        else:
            raise ValidationFailed("Name the stream (stream_id) or the performer (to_user_id)")
        return 201, money.present_contribution(made, user, viewer_id=user.id).model_dump(
            mode="json"
        )

    return await _moving(request, session, user.id, key, body, action)


# --- tips, donations, gifts ------------------------------------------------------------------


@router.post(
    "/streams/{stream_id}/tips", status_code=201, dependencies=[_tips_limit], responses=_MOVES
)
async def tip_stream(
    stream_id: uuid.UUID, body: TipIn, request: Request, user: CurrentUser, session: SessionDep,
    runtime: RuntimeDep, key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Tip a live stream: `tip:received` reaches its room (and its chat) at once."""

    async def action() -> tuple[int, dict[str, Any]]:
        made = await money.tip_stream(
            session, runtime.settings.money, sender=user, stream_id=stream_id,
            tokens=body.tokens, message=body.message, is_private=body.is_private,
        )  # fmt: skip
        return 201, money.present_contribution(made, user, viewer_id=user.id).model_dump(
            mode="json"
        )

    return await _moving(request, session, user.id, key, body, action)


@router.get("/streams/{stream_id}/tips", responses=problem_responses(404, 422))
async def stream_tips(
    stream_id: uuid.UUID, session: ReadSessionDep, page: PageDep, viewer: OptionalUser
) -> Page[ContributionOut]:
    """A stream's tips and gifts, newest first; private ones without sender or message."""
    async with session.begin():
        await streams.get_stream(session, stream_id)  # an unknown stream is a 404, not no tips
        rows, cursor = await money.list_contributions(
            session, params=page, viewer_id=viewer.id if viewer else None, stream_id=stream_id
        )
    return make_page(rows, cursor)


@router.post("/donations", status_code=201, dependencies=[_tips_limit], responses=_MOVES)
async def donate(
    body: DonationIn, request: Request, user: CurrentUser, session: SessionDep, runtime: RuntimeDep,
    key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Support a channel, live or not: `donation:received` reaches its room."""

    async def action() -> tuple[int, dict[str, Any]]:
        channel = await channels.get_channel(session, body.channel_id)
        made = await money.contribute(
            session, runtime.settings.money, kind="donation", sender=user, channel=channel,
            stream=None, tokens=body.tokens, message=body.message, is_private=body.is_private,
        )  # fmt: skip
        return 201, money.present_contribution(made, user, viewer_id=user.id).model_dump(
            mode="json"
        )

    return await _moving(request, session, user.id, key, body, action)


@router.get("/donations/me", responses=problem_responses(401, 422))
async def my_donations(
    user: CurrentUser, session: ReadSessionDep, page: PageDep
) -> Page[ContributionOut]:
    """Donations you made, newest first."""
    async with session.begin():
        rows, cursor = await money.list_contributions(
            session, params=page, viewer_id=user.id, from_user_id=user.id, kind="donation"
        )
    return make_page(rows, cursor)


@router.get("/gifts")
async def gift_catalogue() -> list[GiftOut]:
    """What can be sent, and its price in tokens."""
    return money.gift_catalogue()


@router.post("/gifts", status_code=201, dependencies=[_tips_limit], responses=_MOVES)
async def send_gift(
    body: GiftIn, request: Request, user: CurrentUser, session: SessionDep, runtime: RuntimeDep,
    key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Send gifts to a stream (or a channel): `gift:sent` reaches the room."""

    async def action() -> tuple[int, dict[str, Any]]:
        gift = money.gift_named(body.gift)
        stream = None
        if body.stream_id is not None:
            stream = await money.live_stream(session, body.stream_id)
            channel = await session.get_one(Channel, stream.channel_id)
        elif body.channel_id is not None:
            channel = await channels.get_channel(session, body.channel_id)
        else:
            raise ValidationFailed("Name the stream (stream_id) or the channel (channel_id)")
        made = await money.contribute(
            session, runtime.settings.money, kind="gift", sender=user, channel=channel,
            stream=stream, tokens=gift.tokens * body.quantity, message=body.message,
            is_private=body.is_private, gift=gift,
        )  # fmt: skip
        return 201, money.present_contribution(made, user, viewer_id=user.id).model_dump(
            mode="json"
        )

    return await _moving(request, session, user.id, key, body, action)


# --- subscriptions ---------------------------------------------------------------------------


class TierOut(BaseModel):
    level: int
    name: str
    tokens_per_month: int


class TierUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens_per_month: StrictInt = Field(ge=1, le=1_000_000)
    name: str | None = Field(default=None, max_length=60)


class SubscribeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_id: uuid.UUID
    tier: StrictInt = Field(default=1, ge=1, le=3)
    gift_to: str | None = Field(default=None, description="username of the gift's recipient")


class SubscriptionOut(BaseModel):
    id: uuid.UUID
    channel_id: uuid.UUID
    user_id: uuid.UUID
    payer_id: uuid.UUID
    status: str
    is_gift: bool
    auto_renew: bool
    months: int
    started_at: Any
    current_period_end: Any
    cancelled_at: Any


def _subscription_out(subscription: Subscription) -> dict[str, Any]:
    return SubscriptionOut.model_validate(subscription, from_attributes=True).model_dump(
        mode="json"
    )


@router.get("/channels/{channel_ref}/subscription-tiers", responses=problem_responses(404))
async def channel_tiers(channel_ref: str, session: SessionDep) -> list[TierOut]:
    async with session.begin():
        channel = await channels.get_channel(session, channel_ref)
        tiers = await subscriptions.tiers_of(session, channel)
        return [
            TierOut(level=t.level, name=t.name, tokens_per_month=t.tokens_per_month) for t in tiers
        ]


@router.patch(
    "/channels/{channel_ref}/subscription-tiers/{level}",
    responses=problem_responses(401, 403, 404, 422),
)
async def price_tier(
    channel_ref: str, level: int, body: TierUpdate, user: CurrentUser, session: SessionDep
) -> TierOut:
    """The channel's owner prices a tier (tokens a month)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_ref)
        tier = await subscriptions.set_tier_price(
            session, actor=user, channel=channel, level=level, tokens=body.tokens_per_month,
            name=body.name,
        )  # fmt: skip
        return TierOut(level=tier.level, name=tier.name, tokens_per_month=tier.tokens_per_month)


@router.post("/subscriptions", status_code=201, dependencies=[_payments_limit], responses=_MOVES)
async def subscribe(
    body: SubscribeIn, request: Request, user: CurrentUser, session: SessionDep,
    runtime: RuntimeDep, key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Subscribe to a channel (or gift a month with `gift_to`); the first month is paid now."""

    async def action() -> tuple[int, dict[str, Any]]:
        channel = await channels.get_channel(session, body.channel_id)
        recipient = (
            await accounts.get_user_by_username(session, body.gift_to) if body.gift_to else None
        )
        made = await subscriptions.subscribe(
            session, runtime.settings.money, payer=user, channel=channel, level=body.tier,
            recipient=recipient,
        )  # fmt: skip
        return 201, _subscription_out(made)

    return await _moving(request, session, user.id, key, body, action)


@router.get("/channels/{channel_ref}/subscribers", responses=problem_responses(401, 403, 404, 422))
async def channel_subscribers(
    channel_ref: str, user: CurrentUser, session: ReadSessionDep, page: PageDep
) -> Page[SubscriberOut]:
    """The channel's paid-up subscribers, newest first (its owner only)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_ref)
        channels.ensure_owner(user, channel)
        rows, cursor = await subscriptions.list_subscribers(
            session, channel=channel, params=page, now=utcnow()
        )
    return make_page([_subscriber_out(s, u, t) for s, u, t in rows], cursor)


def _subscriber_out(
    subscription: Subscription, user: User, tier: SubscriptionTier
) -> SubscriberOut:
    return SubscriberOut(
        subscription_id=subscription.id,
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        tier=tier.level,
        tier_name=tier.name,
        is_gift=subscription.is_gift,
        auto_renew=subscription.auto_renew,
        months=subscription.months,
        started_at=subscription.started_at,
        current_period_end=subscription.current_period_end,
    )


@router.get("/subscriptions/me", responses=problem_responses(401))
async def my_subscriptions(user: CurrentUser, session: ReadSessionDep) -> list[dict[str, Any]]:
    async with session.begin():
        return [_subscription_out(s) for s in await subscriptions.list_mine(session, user.id)]


@router.delete("/subscriptions/{subscription_id}", responses=problem_responses(401, 404))
async def cancel_subscription(
    subscription_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> dict[str, Any]:
    """Stop renewing; the month already paid runs to its end."""
    async with session.begin():
        return _subscription_out(
            await subscriptions.cancel(session, actor=user, subscription_id=subscription_id)
        )


# --- revenue and payouts ---------------------------------------------------------------------


@router.get("/channels/{channel_ref}/revenue", responses=problem_responses(401, 403, 404))
async def channel_revenue(
    channel_ref: str, user: CurrentUser, session: ReadSessionDep,
    since: Annotated[date | None, Query(description="first day (UTC)")] = None,
) -> dict[str, Any]:  # fmt: skip
    """What the channel earned (after fees), by day and by source."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_ref)
        channels.ensure_owner(user, channel)
        return await money.channel_revenue(session, channel=channel, since=since)


@router.get("/sell/balance", responses=problem_responses(401))
async def seller_balance(
    user: CurrentUser, session: ReadSessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Seed 003: earnings available to pay out, and what pending payouts hold."""
    settings = runtime.settings.money
    async with session.begin():
        balance = await money.balances(session, settings, user.id)
    unit = settings.tokens_per_unit
    return {
        "available_tokens": balance.earnings_balance,
        "pending_tokens": balance.reserved_balance,
        "available_amount": round(balance.earnings_balance / unit, 2),
        "pending_amount": round(balance.reserved_balance / unit, 2),
        "currency": settings.currency,
        "minimum_payout_tokens": settings.min_payout_tokens,
    }


class PayoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: StrictInt = Field(ge=1)
    destination: str | None = Field(default=None, max_length=255)


class PayoutOut(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    tokens: int
    amount_cents: int
    currency: str
    status: str
    attempts: int
    failure_reason: str | None
    next_attempt_at: Any
    created_at: Any


def _payout_out(payout: Payout) -> dict[str, Any]:
    return PayoutOut.model_validate(payout, from_attributes=True).model_dump(mode="json")


@router.post("/payouts/request", status_code=201, dependencies=[_payments_limit], responses=_MOVES)
async def request_payout(
    body: PayoutIn, request: Request, user: CurrentUser, session: SessionDep, runtime: RuntimeDep,
    key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Ask for earnings to be paid out (from the minimum; an administrator approves)."""

    async def action() -> tuple[int, dict[str, Any]]:
        made = await payouts.request_payout(
            session, runtime.settings.money, user=user, tokens=body.tokens,
            destination=body.destination,
        )  # fmt: skip
        return 201, _payout_out(made)

    return await _moving(request, session, user.id, key, body, action)


@router.get("/payouts", responses=problem_responses(401))
async def my_payouts(user: CurrentUser, session: ReadSessionDep) -> list[dict[str, Any]]:
    async with session.begin():
        return [_payout_out(p) for p in await payouts.list_payouts(session, user_id=user.id)]


@router.post("/sell/connect/onboard", responses=problem_responses(401))
async def connect_onboard(
    request: Request, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    """Seed 003: a link to the payout provider's onboarding (Stripe Connect; the sandbox
    answers a local page)."""
    base = str(request.base_url).rstrip("/")
    link = await _payout_provider(runtime).onboarding_link(
        account_ref=None, user_id=str(user.id), email=user.email,
        return_url=f"{base}/dashboard/payouts", refresh_url=f"{base}/dashboard/payouts?retry=1",
    )  # fmt: skip
    return {"account_ref": link.account_ref, "url": link.url}


AdminStatus = Annotated[
    str | None, Query(description="requested, approved, retrying, paid, failed, rejected")
]


@router.get("/admin/payouts", responses=problem_responses(401, 403))
async def admin_payouts(
    _admin: AdminUser, session: ReadSessionDep, status: AdminStatus = None
) -> list[dict[str, Any]]:
    async with session.begin():
        found = await payouts.list_payouts(session, statuses=(status,) if status else None)
        return [_payout_out(p) for p in found]


@router.get("/admin/transfers", responses=problem_responses(401, 403))
async def admin_transfers(_admin: AdminUser, session: ReadSessionDep) -> list[dict[str, Any]]:
    """Seed 003: transfers that were attempted: paid, retrying or failed."""
    async with session.begin():
        found = await payouts.list_payouts(session, statuses=payouts.ATTEMPTED)
        return [_payout_out(p) for p in found]


class RejectIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


@router.post("/admin/payouts/{payout_id}/approve", responses=problem_responses(401, 403, 404, 409))
async def approve_payout(
    payout_id: uuid.UUID, admin: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Approve and send now; a transfer that fails for a passing reason is retried later."""
    provider = _payout_provider(runtime)
    async with session.begin():
        payout = await payouts.approve(session, admin=admin, payout_id=payout_id)
        payout = await payouts.attempt_transfer(session, provider, payout, now=utcnow())
        return _payout_out(payout)


@router.post("/admin/payouts/{payout_id}/reject", responses=problem_responses(401, 403, 404, 409))
async def reject_payout(
    payout_id: uuid.UUID, body: RejectIn, admin: AdminUser, session: SessionDep
) -> dict[str, Any]:
    """Refuse a payout: its tokens go back to the creator's earnings."""
    async with session.begin():
        return _payout_out(
            await payouts.reject(session, admin=admin, payout_id=payout_id, reason=body.reason)
        )


@router.post("/admin/transfers/{payout_id}/retry", responses=problem_responses(401, 403, 404, 409))
async def retry_transfer(
    payout_id: uuid.UUID, _admin: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Seed 003: try a retrying transfer now rather than at its next attempt."""
    provider = _payout_provider(runtime)
    async with session.begin():
        payout = await payouts.get_payout(session, payout_id)
        return _payout_out(await payouts.attempt_transfer(session, provider, payout, now=utcnow()))


# --- webhooks --------------------------------------------------------------------------------


async def _take_webhook(
    session: SessionDep, provider: PaymentProvider, payload: bytes, headers: Any
) -> str:
    try:
        event = provider.verify_webhook(payload, headers)
    except WebhookRejected as rejected:
        raise WebhookSignatureInvalid(str(rejected)) from rejected
    async with session.begin():
        return await purchases.handle_event(session, provider.name, event)


async def _webhook(
    request: Request, session: SessionDep, runtime: RuntimeDep, name: str
) -> dict[str, Any]:
    provider = runtime.webhook_providers.get(name)
    if provider is None:
        raise NotFound(f"{name} is not configured")
    outcome = await _take_webhook(session, provider, await request.body(), request.headers)
    return {"received": True, "outcome": outcome}


@webhooks.post("/stripe", responses=problem_responses(400, 404))
async def stripe_webhook(
    request: Request, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Stripe's events, verified with `Stripe-Signature`; each acted on once."""
    return await _webhook(request, session, runtime, "stripe")


@webhooks.post("/hyperswitch", responses=problem_responses(400, 404))
async def hyperswitch_webhook(
    request: Request, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Seed 003: Hyperswitch's events, verified with their HMAC signature."""
    return await _webhook(request, session, runtime, "hyperswitch")


@webhooks.post("/sandbox", responses=problem_responses(400, 404))
async def sandbox_webhook(
    request: Request, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """The sandbox provider's signed events (development)."""
    return await _webhook(request, session, runtime, "sandbox")
