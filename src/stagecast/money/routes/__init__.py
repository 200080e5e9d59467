"""HTTP routes of money: wallet, purchases and webhooks, tips, donations, gifts,
subscriptions, revenue and payouts. Every money-moving POST takes `Idempotency-Key`."""

from __future__ import annotations

from fastapi import APIRouter

from stagecast.money.routes import payouts, subscriptions, tips, wallet
from stagecast.money.routes import webhooks as webhook_routes

router = APIRouter()
for part in (wallet, tips, subscriptions, payouts):
    router.include_router(part.router)
webhooks = webhook_routes.router

__all__ = ["router", "webhooks"]
