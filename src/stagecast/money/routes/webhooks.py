"""Payment providers' webhooks, each verified and acted on once."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from stagecast.deps import RuntimeDep, SessionDep
from stagecast.errors import AppError, NotFound, problem_responses
from stagecast.money import purchases
from stagecast.money.providers import PaymentProvider, WebhookRejected

router = APIRouter(prefix="/webhooks", tags=["money"])


class WebhookSignatureInvalid(AppError):
    status, code, title = 400, "WEBHOOK_SIGNATURE_INVALID", "The webhook signature is invalid"


async def take_webhook(
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
    outcome = await take_webhook(session, provider, await request.body(), request.headers)
    return {"received": True, "outcome": outcome}


@router.post("/stripe", responses=problem_responses(400, 404))
async def stripe_webhook(
    request: Request, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Stripe's events, verified with `Stripe-Signature`; each acted on once."""
    return await _webhook(request, session, runtime, "stripe")


@router.post("/hyperswitch", responses=problem_responses(400, 404))
async def hyperswitch_webhook(
    request: Request, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Seed 003: Hyperswitch's events, verified with their HMAC signature."""
    return await _webhook(request, session, runtime, "hyperswitch")


@router.post("/sandbox", responses=problem_responses(400, 404))
async def sandbox_webhook(
    request: Request, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """The sandbox provider's signed events (development)."""
    return await _webhook(request, session, runtime, "sandbox")
