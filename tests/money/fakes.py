"""Local fakes of Stripe's and Hyperswitch's APIs: HTTP servers on free ports that speak the
providers' wire formats, record every request, and honour idempotency the way each provider
does (Stripe's `Idempotency-Key`, Hyperswitch's `payment_id`)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

Reply = tuple[int, dict[str, Any]]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    json: Any = None
    query: dict[str, str] = field(default_factory=dict)
    answer: Reply | None = None  # what a request that took effect answered


@dataclass
class FakeApi:
    """What a fake provider received and will answer.

    - `replies[path]` queues (status, body) answers that come before the default one;
    - `lost[path]` queues errors answered by requests that still took effect (Stripe stores
      such an answer, a 500 included, and replays it for the key);
    - `delays[path]` queues seconds to wait before answering (after the request took effect:
      a slow answer, which a client may give up on);
    - `during` is awaited with each request while the caller waits for its answer;
    - `executed` lists the requests that made something at the provider (not the replays of an
      idempotency key, nor refusals).
    """

    base_url: str = ""
    received: list[Received] = field(default_factory=list)
    executed: list[Received] = field(default_factory=list)
    replies: dict[str, list[Reply]] = field(default_factory=dict)
    lost: dict[str, list[Reply]] = field(default_factory=dict)
    delays: dict[str, list[float]] = field(default_factory=dict)
    during: Callable[[Received], Awaitable[None]] | None = None
    # Stripe: (method, path, key) -> the request's form and the answer it got.
    idempotent: dict[tuple[str, str, str], tuple[dict[str, str], Reply]] = field(
        default_factory=dict
    )

    def to(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def made(self, path: str) -> list[Received]:
        """The requests to `path` that made one object each at the provider."""
        return [r for r in self.executed if r.path == path]

    async def _before_answer(self, request: Received) -> None:
        if self.during is not None:
            await self.during(request)
        waits = self.delays.get(request.path)
        if waits:
            await asyncio.sleep(waits.pop(0))


def stripe_error(status: int, kind: str, message: str, code: str) -> Reply:
    return status, {"error": {"type": kind, "message": message, "code": code}}


def checkout_session(form: dict[str, str], session_id: str) -> dict[str, Any]:
    return {
        "id": session_id,
        "object": "checkout.session",
        "mode": form["mode"],
        "status": "open",
        "payment_status": "unpaid",
        "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
        "currency": form["line_items[0][price_data][currency]"],
        "client_reference_id": form["client_reference_id"],
        "metadata": {
            "purchase_id": form["metadata[purchase_id]"],
            "user_id": form["metadata[user_id]"],
            "tokens": form["metadata[tokens]"],
        },
        "payment_intent": None,
        "success_url": form["success_url"],
        "cancel_url": form["cancel_url"],
        "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        "livemode": False,
    }


def connected_account(account_id: str, *, transfers: str) -> dict[str, Any]:
    return {
        "id": account_id,
        "object": "account",
        "type": "express",
        "details_submitted": transfers == "active",
        "payouts_enabled": transfers == "active",
        "capabilities": {"transfers": transfers},
    }


FIRST_SESSION = "cs_test_a1B2c3D4e5F6g7H8"
FIRST_TRANSFER = "tr_1StagecastTransfer"


def stripe_default_reply(path: str, form: dict[str, str], made: int) -> dict[str, Any]:
    """Stripe's answer; `made` counts the objects this path made before (ids stay distinct)."""
    if path == "/v1/checkout/sessions":
        return checkout_session(form, FIRST_SESSION if not made else f"cs_test_{made + 1:016d}")
    if path == "/v1/transfers":
        return {
            "id": FIRST_TRANSFER if not made else f"tr_{made + 1:020d}",
            "object": "transfer",
            "amount": int(form["amount"]),
            "currency": form["currency"],
            "destination": form["destination"],
            "metadata": {"payout_id": form["metadata[payout_id]"]},
            "reversed": False,
            "livemode": False,
        }
    if path == "/v1/accounts":
        return {"id": "acct_1StagecastCreator", "object": "account", "type": form["type"]}
    if path.startswith("/v1/accounts/"):  # retrieve: onboarding not finished yet
        return connected_account(path.removeprefix("/v1/accounts/"), transfers="inactive")
    if path == "/v1/account_links":
        return {
            "object": "account_link",
            "created": int(time.time()),
            "expires_at": int(time.time()) + 300,
            "url": f"https://connect.stripe.com/setup/e/{form['account']}/onboard",
        }
    return {"error": {"type": "invalid_request_error", "message": f"Unrecognized {path}"}}


def _stripe_answer(fake: FakeApi, request: Received) -> tuple[Reply, bool]:
    """The answer to a new request, and whether Stripe stores it for the request's key (every
    answer but a 5xx from before the endpoint ran). `request.answer` is set when the request
    made the object it asked for."""
    queued = fake.replies.get(request.path)
    if queued:
        reply = queued.pop(0)
        return reply, reply[0] < 500
    made = len(fake.made(request.path))
    request.answer = (200, stripe_default_reply(request.path, request.form, made))
    lost = fake.lost.get(request.path)
    return (lost.pop(0) if lost else request.answer), True


def _transfer_list(fake: FakeApi, group: str | None) -> dict[str, Any]:
    made = [
        r.answer[1]
        for r in fake.made("/v1/transfers")
        if r.answer and r.form.get("transfer_group") == group
    ]
    return {"object": "list", "url": "/v1/transfers", "has_more": False, "data": made}


def _mismatch(key: str) -> Reply:
    return 400, {
        "error": {
            "type": "idempotency_error",
            "message": f"Keys for idempotent requests can only be used with the same parameters "
            f"they were first used with. Try using a key other than '{key}' if you meant to "
            "execute a different request.",
        }
    }


@asynccontextmanager
async def fake_stripe_server() -> AsyncIterator[FakeApi]:
    """Stripe's API as its SDK speaks it. Like Stripe, the first answer to an `Idempotency-Key`
    is stored and replayed for the same key (with other parameters: 400 `idempotency_error`);
    a 5xx counts as failing before the endpoint ran, so it is not stored."""
    fake = FakeApi()

    async def handle(request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        received = Received(
            request.method, request.path, dict(request.headers), form, query=dict(request.query)
        )
        fake.received.append(received)
        key = request.headers.get("Idempotency-Key")
        slot = (request.method, request.path, key) if key else None
        replay = fake.idempotent.get(slot) if slot else None
        queued = fake.replies.get(request.path)
        if replay is not None:
            first_form, reply = replay
            reply = reply if first_form == form else _mismatch(key or "")
        elif request.method == "GET" and request.path == "/v1/transfers" and not queued:
            reply = (200, _transfer_list(fake, received.query.get("transfer_group")))
        else:
            reply, stored = _stripe_answer(fake, received)
            if received.answer is not None:
                fake.executed.append(received)
            if stored and slot:
                fake.idempotent[slot] = (form, reply)
        await fake._before_answer(received)
        status, body = reply
        return web.json_response(body, status=status, headers={"Request-Id": "req_fake"})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    app.router.add_get("/{tail:.*}", handle)
    async with _serving(app, fake):
        yield fake


# Hyperswitch's answer to a `payment_id` it already has.
HYPERSWITCH_DUPLICATE: Reply = (
    400,
    {
        "error": {
            "type": "invalid_request",
            "message": "The payment with the specified payment_id already exists in our records",
            "code": "HE_01",
        }
    },
)


@asynccontextmanager
async def fake_hyperswitch_server() -> AsyncIterator[FakeApi]:
    """Hyperswitch's payments API: `POST /payments` makes a payment with a payment link under
    the `payment_id` sent (a second one with it is a duplicate, HE_01); `GET /payments/{id}`
    reads it back."""
    fake = FakeApi()
    payments: dict[str, dict[str, Any]] = {}

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        received = Received(request.method, request.path, dict(request.headers), {}, body)
        fake.received.append(received)
        queued = fake.replies.get(request.path)
        payment_id = body.get("payment_id") or f"pay_Stagecast{len(payments) + 1:04d}"
        if queued:
            status, reply = queued.pop(0)
        elif payment_id in payments:
            status, reply = HYPERSWITCH_DUPLICATE
        else:
            status, reply = 200, _hyperswitch_payment(payment_id, body)
            payments[payment_id] = reply
            fake.executed.append(received)
        await fake._before_answer(received)
        return web.json_response(reply, status=status)

    async def retrieve(request: web.Request) -> web.Response:
        received = Received(request.method, request.path, dict(request.headers), {})
        fake.received.append(received)
        payment = payments.get(request.match_info["payment_id"])
        if payment is None:
            missing = {"error": {"type": "invalid_request", "message": "Payment does not exist"}}
            return web.json_response({**missing, "code": "HE_02"}, status=404)
        return web.json_response(payment)

    app = web.Application()
    app.router.add_post("/payments", create)
    app.router.add_get("/payments/{payment_id}", retrieve)
    async with _serving(app, fake):
        yield fake


def _hyperswitch_payment(payment_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "payment_id": payment_id,
        "merchant_id": "merchant_stagecast",
        "status": "requires_payment_method",
        "amount": body["amount"],
        "currency": body["currency"],
        "client_secret": f"{payment_id}_secret_abc",
        "metadata": body["metadata"],
        "return_url": body["return_url"],
        "payment_link": {
            "link": f"https://sandbox.hyperswitch.io/payment_link/merchant_stagecast/{payment_id}",
            "payment_link_id": f"plink_{payment_id}",
        },
    }


@asynccontextmanager
async def _serving(app: web.Application, fake: FakeApi) -> AsyncIterator[None]:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.base_url = str(server.make_url("")).rstrip("/")
    try:
        yield
    finally:
        await server.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
