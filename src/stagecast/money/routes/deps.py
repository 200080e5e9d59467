"""What the money routes share: the idempotency header, rate limits, providers."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from stagecast.deps import SessionDep
from stagecast.errors import NotFound, problem_responses
from stagecast.money.idempotency import Action, fingerprint, run_once
from stagecast.money.providers import PaymentProvider, PayoutProvider
from stagecast.ratelimit import rate_limit
from stagecast.runtime import Runtime

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="the same key and body answer the same, once"),
]
tips_limit = Depends(rate_limit("tips"))
payments_limit = Depends(rate_limit("payments"))
MOVES = problem_responses(401, 402, 403, 404, 409, 422, 429)


def payout_provider(runtime: Runtime) -> PayoutProvider:
    """The configured payout provider, or a 404 where payouts are not configured."""
    if runtime.payout_provider is None:
        raise NotFound("Payouts are not configured")
    return runtime.payout_provider


def payment_provider(runtime: Runtime) -> PaymentProvider:
    """The configured payment provider, or a 404 where payments are not configured."""
    if runtime.payments is None:
        raise NotFound("Payments are not configured")
    return runtime.payments


async def move_once(
    request: Request,
    session: SessionDep,
    user_id: uuid.UUID,
    key: str | None,
    body: BaseModel | dict[str, Any],
    action: Action,
) -> JSONResponse:
    """Run a money-moving action once per `Idempotency-Key` (see idempotency.run_once)."""
    return await run_once(
        session,
        user_id=user_id,
        key=key,
        request_hash=request_fingerprint(request, body),
        action=action,
    )


def request_fingerprint(request: Request, body: BaseModel | dict[str, Any]) -> str:
    """What the request asks for, to tell a repeat of it from another request with its key."""
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    return fingerprint(request.method, request.url.path, data)
