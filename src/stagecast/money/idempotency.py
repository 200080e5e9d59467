"""`Idempotency-Key` for money-moving requests: the same key and body answer the same, once.

The answer is stored in the same database transaction as the movement it describes, under a
unique (user, key): two concurrent requests with one key cannot both move money; the loser
rolls back and replays the winner's answer.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.errors import AppError, ValidationFailed
from stagecast.money.models import IdempotentRequest

MAX_KEY_LENGTH = 255
REPLAYED_HEADER = "Idempotent-Replayed"

Action = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]


class IdempotencyKeyReused(AppError):
    status, code, title = (
        422,
        "IDEMPOTENCY_KEY_REUSED",
        "This Idempotency-Key was used for another request",
    )


def fingerprint(method: str, path: str, body: Any) -> str:
    """A hash of what the request asks for, to tell a replay from a different request."""
    canonical = json.dumps([method, path, body], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str | None) -> None:
    if key is not None and not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise ValidationFailed(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")


async def stored_request(
    session: AsyncSession, *, user_id: uuid.UUID, key: str, request_hash: str
) -> IdempotentRequest | None:
    """What an earlier request with this key answered; None for a new key."""
    stored = await session.scalar(
        select(IdempotentRequest).where(
            IdempotentRequest.user_id == user_id, IdempotentRequest.key == key
        )
    )
    if stored is not None and stored.request_hash != request_hash:
        raise IdempotencyKeyReused()
    return stored


async def remember(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    key: str,
    request_hash: str,
    status: int,
    body: dict[str, Any],
) -> None:
    """Store the answer under the key; a concurrent request with the key fails to commit."""
    session.add(
        IdempotentRequest(
            user_id=user_id, key=key, request_hash=request_hash, status_code=status, response=body
        )
    )
    await session.flush()


async def run_once(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    key: str | None,
    request_hash: str,
    action: Action,
) -> JSONResponse:
    """Run `action` in a transaction, or replay the stored answer for the same key."""
    check_key(key)
    for attempt in range(2):
        try:
            async with session.begin():
                if key is not None:
                    stored = await stored_request(
                        session, user_id=user_id, key=key, request_hash=request_hash
                    )
                    if stored is not None:
                        return JSONResponse(
                            stored.response,
                            status_code=stored.status_code,
                            headers={REPLAYED_HEADER: "true"},
                        )
                status, body = await action()
                if key is not None:
                    await remember(
                        session, user_id=user_id, key=key, request_hash=request_hash,
                        status=status, body=body,
                    )  # fmt: skip
            return JSONResponse(body, status_code=status)
        except IntegrityError:
            # Another request with this key committed first: replay its answer.
            if key is None or attempt:
                raise
    raise AssertionError("unreachable")
