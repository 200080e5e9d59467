"""What malformed Socket.IO traffic costs us: one warning line, never a traceback.

Anyone can send bytes to `/socket.io`. python-socketio and Engine.IO log every packet they
cannot decode with a full traceback (hundreds of lines for a dozen packets), and an
undecodable Engine.IO packet on a websocket even escapes into the ASGI server. Both go
through here instead: one warning a packet, at most `BURST` in `WINDOW` seconds, then a
count of what was left unsaid.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

log = structlog.get_logger(__name__)

BURST = 20
WINDOW = 10.0


class WarningBudget:
    """At most `BURST` warnings every `WINDOW` seconds; the rest are counted."""

    def __init__(self) -> None:
        self.window_start = time.monotonic()
        self.spoken = 0
        self.silenced = 0

    def warn(self, event: str, **fields: Any) -> None:
        now = time.monotonic()
        if now - self.window_start >= WINDOW:
            if self.silenced:
                log.warning("socketio_problems_suppressed", count=self.silenced)
            self.window_start, self.spoken, self.silenced = now, 0, 0
        if self.spoken >= BURST:
            self.silenced += 1
            return
        self.spoken += 1
        log.warning(event, **fields)


class QuietLogger(logging.Logger):
    """The logger handed to python-socketio and Engine.IO: their errors are one budgeted
    warning line each (what failed, not where), their chatter below warning is dropped."""

    def __init__(self, name: str, budget: WarningBudget) -> None:
        super().__init__(name, level=logging.WARNING)
        self.budget = budget

    def _log(self, level: int, msg: object, args: Any, *_: Any, **kwargs: Any) -> None:
        if level < logging.WARNING:
            return
        text = str(msg) % args if args else str(msg)
        error = kwargs.get("exc_info")
        self.budget.warn(
            "socketio_problem",
            library=self.name,
            message=text[:200],
            error=_describe(error),
        )


def _describe(exc_info: Any) -> str | None:
    if exc_info is True:
        import sys  # noqa: PLC0415 - only on the error path

        exc_info = sys.exc_info()
    if isinstance(exc_info, tuple) and exc_info[1] is not None:
        exc_info = exc_info[1]
    if isinstance(exc_info, BaseException):
        return f"{type(exc_info).__name__}: {exc_info}"[:200]
    return None


class MalformedTrafficGuard:
    """Around the Socket.IO ASGI app: a packet Engine.IO cannot decode ends that connection
    with one budgeted warning instead of an exception in the server."""

    def __init__(self, app: ASGIApp, budget: WarningBudget) -> None:
        self.app = app
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            if message["type"] in {"http.response.start", "websocket.accept"}:
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except (ValueError, TypeError, KeyError, IndexError, UnicodeError) as error:
            self.budget.warn(
                "socketio_problem",
                library="engineio",
                transport=scope.get("type"),
                error=_describe(error),
            )
            if scope["type"] == "http" and not started:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 400,
                        "headers": [(b"content-type", b"text/plain")],
                    }
                )
                await send({"type": "http.response.body", "body": b"Bad request"})
