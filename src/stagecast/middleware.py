"""Pure ASGI middleware: request context and metrics, security headers, body size limit,
open CORS for media and seed 004's routes."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stagecast.errors import PROBLEM_CONTENT_TYPE, AppError, InternalError, PayloadTooLarge
from stagecast.observability import Metrics

log = structlog.get_logger("stagecast.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")

# The API and the web app: same origin only, media from blobs (browser ingest preview).
DEFAULT_CSP = (
    "default-src 'self'; img-src 'self' data: blob: https:; media-src 'self' blob:; "
    "connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
# The interactive docs: Swagger UI from our own build, started by an inline script.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'self'; "
    "frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def route_template(scope: Scope) -> str:
    """The matched route as a template (`/api/v1/users/{user_id}`), never the raw path.

    Metric labels must stay few: ids in paths would make a series per user. The matched
    route knows its own template but not the prefixes it was included under, so the
    template is aligned to the end of the path and the path's leading segments kept.
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not template:
        return "<unmatched>"
    path_segments = [s for s in scope["path"].split("/") if s]
    template_segments = [s for s in template.split("/") if s]
    raw_segments = [s for s in (getattr(route, "path", None) or template).split("/") if s]
    rest = next((i for i, s in enumerate(raw_segments) if s.endswith(":path}")), None)
    if rest is not None:
        # A `{name:path}` parameter takes any number of segments, so the end of the path
        # cannot be aligned: align the segments before it to the start of the path instead.
        head = template_segments[:rest]
        for start in range(len(path_segments) - len(head) + 1):
            window = path_segments[start : start + len(head)]
            if all(t.startswith("{") or t == p for t, p in zip(head, window, strict=True)):
                return "/" + "/".join(path_segments[:start] + template_segments)
        return "/" + "/".join(template_segments)
    prefix = path_segments[: max(0, len(path_segments) - len(template_segments))]
    return "/" + "/".join(prefix + template_segments)


class RequestContextMiddleware:
    """Give each request an id (echoed as X-Request-ID), log it once, and measure it."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        started = time.perf_counter()

        status_started = [False]

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                status_started[0] = True
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here rather than by Starlette's outermost error middleware, so that a
            # 500 carries the request id and the security headers like every other answer.
            log.exception("unhandled_error", path=scope["path"], method=scope["method"])
            if status_started[0]:
                raise
            status = 500
            await send_problem(
                send_with_id,
                scope,
                InternalError("An unexpected error occurred; quote the request id to the operator"),
            )
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            template = route_template(scope)
            method = scope["method"]
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(elapsed)
            log.info(
                "request",
                method=method,
                path=scope["path"],
                route=template,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )


class SecurityHeadersMiddleware:
    """Seed 003's security headers, rate-limit headers, and Global Privacy Control."""

    def __init__(self, app: ASGIApp, *, force_hsts: bool = False) -> None:
        self.app = app
        self.force_hsts = force_hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        csp = DOCS_CSP if path in DOCS_PATHS else DEFAULT_CSP
        gpc = _header(scope, b"sec-gpc") == "1"
        if gpc:
            scope.setdefault("state", {})["do_not_sell"] = True
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = message.setdefault("headers", [])
                present = {key.lower() for key, _ in headers}
                extra: list[tuple[str, str]] = [
                    ("content-security-policy", csp),
                    ("x-frame-options", "DENY"),
                    ("x-content-type-options", "nosniff"),
                    ("referrer-policy", "strict-origin-when-cross-origin"),
                    ("permissions-policy", "camera=(self), microphone=(self), geolocation=()"),
                    ("cross-origin-opener-policy", "same-origin"),
                ]
                if https or self.force_hsts:
                    extra.append(
                        ("strict-transport-security", "max-age=63072000; includeSubDomains")
                    )
                if gpc:
                    extra.append(("gpc", "1"))
                state: Any = scope.get("state", {}).get("rate_limit")
                if state is not None:
                    extra.extend((k.lower(), v) for k, v in state.headers().items())
                if b"content-security-policy" in present:
                    # A page that sets its own policy (the clip embed) chose its framing too.
                    present.add(b"x-frame-options")
                for key, value in extra:
                    if key.encode() not in present:
                        headers.append((key.encode(), value.encode()))
            await send(message)

        await self.app(scope, receive, send_with_headers)


# Media and seed 004's API are open to players and pages on any origin. Range is listed though
# single ranges are CORS-safelisted: older browsers still preflight them.
OPEN_CORS_METHODS = {"/livestream": "GET, POST, HEAD, OPTIONS", "/hls": "GET, HEAD, OPTIONS"}
OPEN_CORS_ALLOWED_HEADERS = "Content-Type, Authorization, Range"
OPEN_CORS_EXPOSED_HEADERS = (
    "Content-Length, Content-Range, Retry-After, "
    "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
)


def open_cors_methods(path: str) -> str | None:
    """The methods a cross-origin caller may use on `path`, if it is an open one."""
    for prefix, methods in OPEN_CORS_METHODS.items():
        if path == prefix or path.startswith(f"{prefix}/"):
            return methods
    return None


class OpenCorsMiddleware:
    """`Access-Control-Allow-Origin: *` on every answer under `/livestream` and `/hls`
    (errors and 429s included), and their preflights answered before routing and limits."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        methods = open_cors_methods(scope["path"]) if scope["type"] == "http" else None
        if methods is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            headers = {
                "access-control-allow-origin": "*",
                "access-control-allow-methods": methods,
                "access-control-allow-headers": OPEN_CORS_ALLOWED_HEADERS,
                "access-control-max-age": "86400",
            }
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_open(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = message.setdefault("headers", [])
                present = {key.lower() for key, _ in headers}
                for key, value in (
                    (b"access-control-allow-origin", b"*"),
                    (b"access-control-expose-headers", OPEN_CORS_EXPOSED_HEADERS.encode()),
                ):
                    if key not in present:
                        headers.append((key, value))
            await send(message)

        await self.app(scope, receive, send_open)


class BodySizeLimitMiddleware:
    """Refuse bodies over the limit with 413, by Content-Length or while streaming."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, path_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.path_limits.get(scope["path"], self.max_bytes)
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > max_bytes):
            await send_problem(send, scope, self._error(max_bytes))
            return
        received = 0
        refused = False
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received, refused, response_started
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # Answer now, and tell the app the client went away: an exception raised
                    # here would be caught by the body parser and turned into a 400.
                    refused = True
                    if not response_started:
                        response_started = True
                        await send_problem(send, scope, self._error(max_bytes))
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if refused:
                return  # the 413 already went out; drop whatever the app answers
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.app(scope, counting_receive, tracking_send)

    @staticmethod
    def _error(max_bytes: int) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body may be at most {max_bytes} bytes")


class SeedBasePathMiddleware:
    """Seed 000's clients call `/api/<route>` (its API has no version); the same routes live
    under `/api/v1`. `/api/...` that is not `/api/v1/...` is served as `/api/v1/...`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] == "http"
            and path.startswith("/api/")
            and not path.startswith("/api/v1/")
            and path != "/api/v1"
        ):
            scope = {**scope, "path": "/api/v1/" + path.removeprefix("/api/")}
            scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)


class HostNotAllowed(AppError):
    status, code, title = 400, "HOST_NOT_ALLOWED", "This server does not answer for that host"


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether a Host header's name (port aside) is one of `allowed` (`*.x` for subdomains)."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower().rstrip(".")
    for pattern in (p.lower() for p in allowed):
        if pattern == name or (pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


class AllowedHostsMiddleware:
    """Refuse requests naming a host this server is not (`Host: evil.example`), so that no
    answer, redirect or address can be built from it."""

    def __init__(self, app: ASGIApp, *, hosts: list[str]) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"} or not self.hosts:
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if host_allowed(host, self.hosts):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            await send_problem(send, scope, HostNotAllowed(f"Unknown host {host[:100]!r}"))


async def send_problem(send: Send, scope: Scope, error: AppError) -> None:
    """Answer a problem+json directly from middleware (outside FastAPI's handlers)."""
    body = error.to_problem(instance=scope["path"])
    request_id = scope.get("state", {}).get("request_id")
    if request_id:
        body["request_id"] = request_id
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                (b"content-length", str(len(payload)).encode()),
                *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
