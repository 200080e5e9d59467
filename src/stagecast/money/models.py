"""The ledger (accounts, transactions, entries) and what moves money through it."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stagecast.db.base import Base, JSONType, new_id, utcnow


class AccountKind(enum.StrEnum):
    WALLET = "wallet"  # a user's spendable tokens
    EARNINGS = "earnings"  # a creator's tokens earned, paid out from here
    PLATFORM_REVENUE = "platform_revenue"  # fees
    PAYMENT_CLEARING = "payment_clearing"  # money received from payment providers (negative)
    PAYOUTS_IN_FLIGHT = "payouts_in_flight"  # requested payouts until the transfer settles
    PAYOUTS_SENT = "payouts_sent"  # tokens that left as money (positive: what was paid out)
    CHARGEBACK_LOSSES = "chargeback_losses"  # refunds of tokens already spent
    # A tournament's entry fees until its prizes are paid ("prize_pool:<tournament id>"):
    # never negative, so prizes cannot pay out more than the fees brought in.
    PRIZE_POOL = "prize_pool"


# System accounts may hold any sign: they mirror money outside the ledger.
SYSTEM_KINDS = frozenset(
    {
        AccountKind.PLATFORM_REVENUE,
        AccountKind.PAYMENT_CLEARING,
        AccountKind.PAYOUTS_IN_FLIGHT,
        AccountKind.PAYOUTS_SENT,
        AccountKind.CHARGEBACK_LOSSES,
    }
)


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # "wallet:<user id>", "earnings:<user id>", or the system account's kind.
    key: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    # The sum of the account's entries, kept in the transaction that adds them.
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    allow_negative: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerTransaction(Base):
    """One movement: its entries sum to zero. Never updated; corrections reverse it."""

    __tablename__ = "ledger_transactions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    description: Mapped[str] = mapped_column(String(200))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reverses_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ledger_transactions.id", ondelete="RESTRICT")
    )
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_entries_account_id_id", "account_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    transaction_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ledger_transactions.id", ondelete="RESTRICT"), index=True
    )
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ledger_accounts.id", ondelete="RESTRICT")
    )
    amount: Mapped[int] = mapped_column(BigInteger)  # signed tokens
    balance_after: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Contribution(Base):
    """Tokens a viewer gave a creator: a tip on a stream, a donation, a gift."""

    __tablename__ = "contributions"
    __table_args__ = (Index("ix_contributions_channel_id_id", "channel_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))  # tip | donation | gift
    stream_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("streams.id", ondelete="SET NULL"), index=True
    )
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    from_user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    to_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    tokens: Mapped[int] = mapped_column(BigInteger)
    fee_tokens: Mapped[int] = mapped_column(BigInteger)
    message: Mapped[str | None] = mapped_column(String(500))
    is_private: Mapped[bool] = mapped_column(default=False)
    gift_slug: Mapped[str | None] = mapped_column(String(40))
    transaction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_transactions.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotentRequest(Base):
    """The answer to a money-moving request, replayed for the same `Idempotency-Key`."""

    __tablename__ = "idempotent_requests"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    response: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Purchase(Base):
    """Tokens bought through a payment provider: pending until its webhook says paid.

    The row is the checkout's intent, committed before the provider is asked: while
    `provider_ref` is empty the checkout is not known to exist, and `next_attempt_at` says when
    the jobs ask again (with the same idempotency key, so the provider makes one checkout).
    """

    __tablename__ = "purchases"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    tokens: Mapped[int] = mapped_column(BigInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    provider: Mapped[str] = mapped_column(String(32))
    provider_ref: Mapped[str | None] = mapped_column(String(255), index=True)
    # The provider's id of the payment itself (Stripe's PaymentIntent), named by refunds.
    payment_ref: Mapped[str | None] = mapped_column(String(255), index=True)
    # pending -> completed -> partially_refunded -> refunded | disputed; pending -> failed when
    # the provider never made the checkout.
    status: Mapped[str] = mapped_column(String(20), default="pending")
    # Where the buyer returns (a retried checkout must ask with the same), and where they pay.
    success_url: Mapped[str | None] = mapped_column(String(2000))
    cancel_url: Mapped[str | None] = mapped_column(String(2000))
    checkout_url: Mapped[str | None] = mapped_column(String(2000))
    # Tries at making the checkout; the next is due at `next_attempt_at` (None once made).
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    # What refunds took back so far (partial refunds add up).
    refunded_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    transaction_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]


class ProcessedWebhook(Base):
    """A provider event already acted on: a replay of it changes nothing."""

    __tablename__ = "processed_webhooks"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Payout(Base):
    """Earnings a creator asked to be paid: requested -> approved -> paid | failed, or
    rejected (tokens back to earnings).

    An approved (or retrying) payout is the transfer's intent. Each attempt is committed before
    the provider is called (`attempts` + 1, `next_attempt_at` moved past the time a call may
    take) and its outcome recorded after, so an attempt a crash cut off comes due again and is
    retried with the same idempotency key.
    """

    __tablename__ = "payouts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    tokens: Mapped[int] = mapped_column(BigInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="requested", index=True)
    destination: Mapped[str | None] = mapped_column(String(255))
    provider_ref: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    decided_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)  # `from`/`to`
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PayoutAccount(Base):
    """A creator's account at the payout provider (Stripe Connect's `acct_…`): recorded at
    onboarding so that the next onboarding reuses it, with whether it can take transfers."""

    __tablename__ = "payout_accounts"
    __table_args__ = (UniqueConstraint("user_id", "provider"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32))
    account_ref: Mapped[str] = mapped_column(String(255))
    # The provider said its onboarding is done (Stripe: the transfers capability is active).
    ready: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SubscriptionTier(Base):
    __tablename__ = "subscription_tiers"
    __table_args__ = (UniqueConstraint("channel_id", "level"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    level: Mapped[int]  # 1, 2, 3
    name: Mapped[str] = mapped_column(String(60))
    tokens_per_month: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Subscription(Base):
    """A viewer's (or a gift recipient's) subscription to a channel, one month at a time."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        Index("ix_subscriptions_channel_user", "channel_id", "user_id"),
        # A channel's paid-up subscribers: listed, counted, and the milestones.
        Index("ix_subscriptions_channel_paid_up", "channel_id", "status", "current_period_end"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    payer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    tier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscription_tiers.id"))
    # active -> (cancelled at period end) -> ended | lapsed (renewal could not be paid)
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    is_gift: Mapped[bool] = mapped_column(default=False)
    auto_renew: Mapped[bool] = mapped_column(default=True)
    months: Mapped[int] = mapped_column(default=1)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    current_period_end: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]
