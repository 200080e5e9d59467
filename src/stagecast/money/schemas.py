"""What the money API takes and answers. Token amounts are whole numbers, never floats."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictInt

# Strict: 1.5, "10" and true are refused, not rounded or converted.
Tokens = StrictInt


class BalanceOut(BaseModel):
    token_balance: int
    earnings_balance: int
    reserved_balance: int
    currency_code: str
    conversion_rate: float  # tokens per currency unit


class TransactionOut(BaseModel):
    id: uuid.UUID
    transaction_id: uuid.UUID
    transaction_type: str
    account: str  # wallet | earnings
    amount_tokens: int
    amount_currency: float
    fee_tokens: int
    balance_after: int
    description: str
    created_at: datetime


class TipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: Tokens = Field(ge=1, description="whole tokens, at least 1")
    message: str | None = Field(default=None, max_length=500)
    is_private: bool = False


class DonationIn(TipIn):
    channel_id: uuid.UUID


class TransferIn(TipIn):
    """Seed 002's wallet transfer: a tip to a performer, on a stream or not."""

    to_user_id: uuid.UUID | None = None
    stream_id: uuid.UUID | None = None


class GiftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gift: str = Field(max_length=40)
    quantity: StrictInt = Field(default=1, ge=1, le=100)
    stream_id: uuid.UUID | None = None
    channel_id: uuid.UUID | None = None
    message: str | None = Field(default=None, max_length=500)
    is_private: bool = False


class GiftOut(BaseModel):
    slug: str
    name: str
    tokens: int


class ContributionOut(BaseModel):
    id: uuid.UUID
    kind: str
    stream_id: uuid.UUID | None
    channel_id: uuid.UUID
    from_user_id: uuid.UUID | None  # hidden on private ones, except to the two people in it
    from_username: str | None
    from_display_name: str | None  # seed 002's `from_user` ("John Doe")
    to_user_id: uuid.UUID
    tokens: int
    fee_tokens: int
    message: str | None
    is_private: bool
    gift: str | None
    created_at: datetime


class TierOut(BaseModel):
    level: int
    name: str
    tokens_per_month: int


class SubscriptionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    channel_id: uuid.UUID
    user_id: uuid.UUID
    payer_id: uuid.UUID
    status: str
    is_gift: bool
    auto_renew: bool
    months: int
    started_at: datetime
    current_period_end: datetime
    cancelled_at: datetime | None


class PayoutOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    tokens: int
    amount_cents: int
    currency: str
    status: str
    attempts: int
    failure_reason: str | None
    next_attempt_at: datetime | None
    created_at: datetime


class SellerBalanceOut(BaseModel):
    """Seed 003's seller balance (`connected`, `available`, `pending` in cents) beside ours."""

    connected: bool = Field(description="the payout account finished its onboarding")
    available: int = Field(description="cents: what earnings would pay out now")
    pending: int = Field(description="cents: what requested payouts hold")
    available_tokens: int
    pending_tokens: int
    available_amount: float
    pending_amount: float
    currency: str
    minimum_payout_tokens: int


class OnboardingOut(BaseModel):
    onboarding_url: str = Field(description="seed 003's name: where the creator goes next")
    url: str = Field(description="the same link")
    account_ref: str
    connected: bool = Field(description="the onboarding is already done")


class TransferOut(BaseModel):
    """A payout's transfer, with seed 003's field names (and our tokens and reason)."""

    id: uuid.UUID
    seller_id: uuid.UUID
    order_id: None = Field(default=None, description="always null: a payout pays earnings")
    amount_cents: int
    platform_fee_cents: int = Field(description="0: the fee was taken when the tokens came in")
    currency: str
    status: str = Field(description="approved (sending), retrying, paid or failed")
    retry_count: int = Field(description="attempts after the first")
    next_retry_at: datetime | None
    created_at: datetime
    tokens: int
    failure_reason: str | None


class TransfersOut(BaseModel):
    """Seed 003's transfer list: a page of `transfers`, and how many match in all."""

    transfers: list[TransferOut]
    total: int
    limit: int
    offset: int


class SubscriberOut(BaseModel):
    subscription_id: uuid.UUID
    user_id: uuid.UUID
    username: str
    display_name: str
    tier: int
    tier_name: str
    is_gift: bool
    auto_renew: bool
    months: int
    started_at: datetime
    current_period_end: datetime
