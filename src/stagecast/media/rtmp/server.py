"""The RTMP listener: accepts publishers, tracks their sessions, kicks them on request."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from types import TracebackType

import structlog

from stagecast.addresses import client_address
from stagecast.media.rtmp.session import Authorize, PublishRequest, RtmpLimits, RtmpSession

log = structlog.get_logger(__name__)


class RtmpServer:
    """Accept RTMP publishers on one port and hand each accepted publish to its sink.

    `authorize` decides every publish: it returns the sink or raises `PublishRefused`. The server
    does not refuse a second publisher on a live key by itself: that is the authorize callback's
    call (refuse it, or `disconnect` the old publisher first to let a reconnect take over).
    """

    def __init__(
        self,
        authorize: Authorize,
        *,
        host: str = "0.0.0.0",  # noqa: S104 - publishers connect from other machines
        port: int = 1935,
        app: str = "live",
        limits: RtmpLimits | None = None,
    ) -> None:
        self._authorize = authorize
        self._host = host
        self._port = port
        self._app = app
        self._limits = limits or RtmpLimits()
        self._server: asyncio.Server | None = None
        self._sessions: set[RtmpSession] = set()
        self._per_address: Counter[str] = Counter()
        self._ids = itertools.count(1)

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the RTMP server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def publishers(self) -> list[PublishRequest]:
        """The publishes live on this server right now."""
        return [s.request for s in self._sessions if s.request is not None]

    async def start(self) -> None:
        """Start listening."""
        self._server = await asyncio.start_server(self._accept, self._host, self._port)
        log.info("rtmp_listening", host=self._host, port=self.port, app=self._app)

    async def close(self) -> None:
        """Stop listening, end every session (sinks get `on_close`) and wait for them."""
        if self._server is not None:
            self._server.close()
        await asyncio.gather(*(self._end(s, "server shutting down") for s in set(self._sessions)))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def disconnect(self, stream_key: str, reason: str = "disconnected by server") -> int:
        """Disconnect every publisher on `stream_key` (a regenerated key); return how many."""
        targets = [
            s
            for s in self._sessions
            if s.request is not None and s.request.stream_key == stream_key
        ]
        await asyncio.gather(*(self._end(s, reason) for s in targets))
        return len(targets)

    async def __aenter__(self) -> RtmpServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _end(self, session: RtmpSession, reason: str) -> None:
        session.close(reason)
        try:
            async with asyncio.timeout(self._limits.close_timeout):
                await session.finished.wait()
        except TimeoutError:
            # The sink is stuck; cancelling still runs the session's cleanup (and on_close).
            log.warning("rtmp_session_cancelled", connection_id=session.connection_id)
            if session.task is not None:
                session.task.cancel()
                await asyncio.wait([session.task])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection_id = next(self._ids)
        peername = writer.get_extra_info("peername")
        address = client_address(peername) or str(peername)  # a Unix socket: its path
        refusal = None
        if len(self._sessions) >= self._limits.max_connections:
            refusal = "too many connections"
        elif self._per_address[address] >= self._limits.max_connections_per_ip:
            refusal = "too many connections from this address"
        if refusal is not None:
            log.warning("rtmp_connection_refused", reason=refusal, address=address)
            writer.close()
            return
        session = RtmpSession(
            reader,
            writer,
            connection_id=connection_id,
            app=self._app,
            authorize=self._authorize,
            limits=self._limits,
        )
        self._sessions.add(session)
        self._per_address[address] += 1
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            self._per_address[address] -= 1
            if not self._per_address[address]:
                del self._per_address[address]
