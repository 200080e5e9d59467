"""Limits on HTTP connections below the app: read timeouts, header size, connection caps.

uvicorn bounds the idle time between two requests on a connection (`timeout_keep_alive`, which
`stagecast serve` sets from `http_keep_alive_seconds`), and nothing else with httptools, the
parser it runs: any byte received cancels that timer, so a client that trickles its headers a
byte at a time, or stops sending a body half-way, holds its connection for as long as it
likes; headers may be of any size; and nothing counts connections. ASGI middleware cannot help,
since the app is called only once the headers are complete. So `stagecast serve` runs uvicorn's
httptools protocol with what it lacks added here:

- a request's headers must arrive within `http_header_timeout_seconds` of the connection
  opening (its first request) or of their first byte (later ones), and be at most
  `http_max_header_bytes`: 408 and 431 otherwise;
- a body may pause for at most `http_body_timeout_seconds` while the server waits for it: 408
  (time the app takes to ask for more is not the client's doing, and is not counted);
- at most `http_max_connections` connections in all and `http_max_connections_per_ip` from one
  address (an IPv6 /64 counts as one), websockets included: the rest get 503 or 429 at once.
  Trusted proxies (`forwarded_allow_ips`) count toward the total only: every client behind
  them shares their address, so the proxy must limit them per client.

These answers never reach the app: they are problem+json written straight to the socket, then
the connection is closed once the client has read it or after `LINGER_SECONDS` (closing with
the client's bytes unread would reset the connection and could lose the answer).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from stagecast.addresses import client_address, peer_ip
from stagecast.errors import PROBLEM_CONTENT_TYPE, AppError

if TYPE_CHECKING:
    from stagecast.config import Settings
    from stagecast.observability import Metrics

log = structlog.get_logger(__name__)

LINGER_SECONDS = 2.0
# One warning line per kind of cut at most this often, however many clients are cut.
WARN_EVERY_SECONDS = 10.0


class RequestTimeout(AppError):
    status, code, title = 408, "REQUEST_TIMEOUT", "The request did not arrive in time"


class HeadersTooLarge(AppError):
    status, code, title = 431, "HEADERS_TOO_LARGE", "The request headers are too large"


class TooManyConnectionsFromAddress(AppError):
    status, code, title = 429, "TOO_MANY_CONNECTIONS", "Too many connections from this address"


class TooManyConnections(AppError):
    status, code, title = 503, "TOO_MANY_CONNECTIONS", "The server holds all the connections it may"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(forwarded_allow_ips: str) -> list[Network]:
    """The networks of uvicorn's `forwarded_allow_ips` ("*" is every address)."""
    networks: list[Network] = []
    for entry in (part.strip() for part in forwarded_allow_ips.split(",")):
        if entry == "*":
            return [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue  # a Unix socket path: uvicorn's, not an address
    return networks


def problem_response(
    error: AppError, *, instance: str | None, default_headers: list[tuple[bytes, bytes]]
) -> bytes:
    """A whole HTTP/1.1 answer carrying `error` as problem+json, closing the connection."""
    body = json.dumps(error.to_problem(instance=instance)).encode()
    status = HTTPStatus(error.status)
    headers = [
        *default_headers,
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"x-content-type-options", b"nosniff"),
        *((name.lower().encode(), value.encode()) for name, value in error.headers.items()),
    ]
    head = [f"HTTP/1.1 {status.value} {status.phrase}".encode()]
    head.extend(name + b": " + value for name, value in headers)
    return b"\r\n".join(head) + b"\r\n\r\n" + body


@dataclass(eq=False)
class Slot:
    """One admitted connection's place in the counts; freed once, when it closes."""

    guard: ConnectionGuard
    address: str | None
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.guard.release(self.address)


class ConnectionGuard:
    """One server's connection limits and what is open against them."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.header_timeout = settings.http_header_timeout_seconds
        self.body_timeout = settings.http_body_timeout_seconds
        self.max_header_bytes = settings.http_max_header_bytes
        self.max_connections = settings.http_max_connections
        self.max_per_address = settings.http_max_connections_per_ip
        self.open = 0
        self.per_address: Counter[str] = Counter()
        self._trusted = trusted_networks(settings.forwarded_allow_ips)
        self._metrics = metrics
        self._warned_at: dict[str, float] = {}
        self._unwarned: Counter[str] = Counter()
        if metrics is not None:
            metrics.connections_open.set_function(lambda: self.open)

    def protocol_class(self) -> type[LimitedHttpProtocol]:
        """uvicorn's `http` protocol class, bound to this guard."""
        return type("LimitedHttpProtocol", (LimitedHttpProtocol,), {"guard": self})

    def admit(self, peer: object) -> Slot | AppError:
        """Count a new connection from `peer`, or say why it may not open."""
        if self.open >= self.max_connections:
            return TooManyConnections(
                f"The server holds {self.max_connections} connections; try again shortly",
                headers={"Retry-After": "1"},
            )
        counted = None if self._is_trusted(peer) else client_address(peer)
        if counted is not None:
            if self.per_address[counted] >= self.max_per_address:
                return TooManyConnectionsFromAddress(
                    f"At most {self.max_per_address} connections may be open from one address",
                    headers={"Retry-After": "1"},
                )
            self.per_address[counted] += 1
        self.open += 1
        return Slot(self, counted)

    def release(self, address: str | None) -> None:
        self.open -= 1
        if address is not None:
            self.per_address[address] -= 1
            if self.per_address[address] <= 0:
                del self.per_address[address]

    def cut(self, reason: str, peer: object, *, warn: bool = True) -> None:
        """Count (and now and then log) a connection refused or cut for `reason`."""
        if self._metrics is not None:
            self._metrics.connections_cut.labels(reason).inc()
        if not warn:
            return
        now = time.monotonic()
        if now - self._warned_at.get(reason, -WARN_EVERY_SECONDS) < WARN_EVERY_SECONDS:
            self._unwarned[reason] += 1
            return
        self._warned_at[reason] = now
        log.warning(
            "http_connection_cut",
            reason=reason,
            address=client_address(peer),
            also_since_last_line=self._unwarned.pop(reason, 0),
        )

    def _is_trusted(self, peer: object) -> bool:
        ip = peer_ip(peer)
        return ip is not None and any(ip in network for network in self._trusted)


class _ReleasesSlot(asyncio.Protocol):
    """Mixed into the websocket protocol: an upgraded connection keeps its slot until it ends."""

    slot: Slot | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            if self.slot is not None:
                self.slot.release()


_COUNTED_WS_CLASSES: dict[type[asyncio.Protocol], type[asyncio.Protocol]] = {}


def _releasing(ws_class: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """`ws_class` with `_ReleasesSlot` mixed in (made once per class)."""
    if ws_class not in _COUNTED_WS_CLASSES:
        name = f"Counted{ws_class.__name__}"
        _COUNTED_WS_CLASSES[ws_class] = type(name, (_ReleasesSlot, ws_class), {})
    return _COUNTED_WS_CLASSES[ws_class]


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body timeouts and connection caps."""

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.ws_protocol_class is not None:
            self.ws_protocol_class = _releasing(self.ws_protocol_class)
        self._slot: Slot | None = None
        self._answered = False  # our own answer went out: discard whatever else arrives
        # Bytes of the request being read while its headers are incomplete; None past them.
        self._header_bytes: int | None = 0
        self._message_begun = False
        self._messages_completed = 0
        self._reading_body = False
        self._body_seen = 0.0
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        admitted = self.guard.admit(self.client)
        if isinstance(admitted, AppError):
            limit = "total" if isinstance(admitted, TooManyConnections) else "per_ip"
            self._answer_and_close(admitted, reason=f"{limit}_connection_limit")
            return
        self._slot = admitted
        # The first request's headers are due this long after the connection opens.
        self._header_timer = self.loop.call_later(self.guard.header_timeout, self._headers_due)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timers()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        if self._slot is not None:
            self._slot.release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return
        if self._header_bytes is not None:
            self._header_bytes += len(data)
        completed = self._messages_completed
        super().data_received(data)
        if self._answered or self.transport.is_closing():
            return
        # Bytes towards the next request's headers: the start of one, or bytes before it
        # (httptools skips blank lines between requests; they must not hold the connection).
        # The end of a request in this chunk is not: its answer may take long.
        toward_headers = self._message_begun or completed == self._messages_completed
        if self._header_bytes is not None and toward_headers:
            if self._header_bytes > self.guard.max_header_bytes:
                self._cut_while_reading_headers(
                    HeadersTooLarge(
                        f"The request line and headers may be at most "
                        f"{self.guard.max_header_bytes} bytes"
                    ),
                    reason="headers_too_large",
                )
                return
            if self._header_timer is None:  # bytes of a later request began arriving
                self._header_timer = self.loop.call_later(
                    self.guard.header_timeout, self._headers_due
                )
        if self._reading_body and self._body_timer is None:
            self._body_timer = self.loop.call_later(self.guard.body_timeout, self._body_due)

    # httptools' callbacks, which mark where in a request the connection is.
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._message_begun = True

    def on_headers_complete(self) -> None:
        self._header_bytes = None
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            self._reading_body = True
            self._body_seen = self.loop.time()

    def on_body(self, body: bytes) -> None:
        self._body_seen = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        # What follows on the connection is the next request's headers.
        self._messages_completed += 1
        self._message_begun = False
        self._header_bytes = 0

    def handle_websocket_upgrade(self) -> None:
        self._stop_timers()
        self._header_bytes = None
        super().handle_websocket_upgrade()
        protocol = self.transport.get_protocol()
        if isinstance(protocol, _ReleasesSlot):
            protocol.slot, self._slot = self._slot, None

    def _headers_due(self) -> None:
        self._header_timer = None
        if self.flow.read_paused:
            # We stopped reading (a pipelined request waits its turn): not the client's doing.
            self._header_timer = self.loop.call_later(self.guard.header_timeout, self._headers_due)
            return
        if not self._message_begun:
            # Not a byte of a request yet (an unused preconnection, or a client that only
            # holds the socket): close, as after an idle keep-alive. Browsers do this all the
            # time, so it is counted but not logged.
            self.guard.cut("idle_timeout", self.client, warn=False)
            self.transport.close()
            return
        self._cut_while_reading_headers(
            RequestTimeout(
                f"The request headers must arrive within {self.guard.header_timeout:g} s"
            ),
            reason="header_timeout",
        )

    def _body_due(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        now = self.loop.time()
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            # The app has not asked for more of the body yet: the client is not late.
            self._body_seen = now
        idle = now - self._body_seen
        if idle < self.guard.body_timeout:
            self._body_timer = self.loop.call_later(self.guard.body_timeout - idle, self._body_due)
            return
        if cycle.response_started:
            self.guard.cut("body_timeout", self.client)
            self.transport.close()
            return
        # The app waiting for the body is told that the client left; the client gets a 408.
        cycle.disconnected = True
        cycle.message_event.set()
        self._answer_and_close(
            RequestTimeout(f"The request body stopped arriving for {self.guard.body_timeout:g} s"),
            reason="body_timeout",
            instance=cycle.scope.get("path"),
        )

    def _cut_while_reading_headers(self, error: AppError, *, reason: str) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            # The answer to an earlier (pipelined) request is still to come: ours would be
            # taken for it.
            self.guard.cut(reason, self.client)
            self.transport.close()
            return
        self._answer_and_close(error, reason=reason)

    def _answer_and_close(
        self, error: AppError, *, reason: str, instance: str | None = None
    ) -> None:
        self._answered = True
        self._stop_timers()
        self.guard.cut(reason, self.client)
        self.transport.write(
            problem_response(
                error, instance=instance, default_headers=self.server_state.default_headers
            )
        )
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        # Lingering close: end our side, read and drop what the client still sends until it
        # closes too (its end of file closes the transport), or abort after a while.
        self.transport.write_eof()
        self.flow.resume_reading()
        self._linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.abort)

    def _stop_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None
