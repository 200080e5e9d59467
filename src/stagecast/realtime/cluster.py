"""Commands between the nodes of one deployment: Redis pub/sub, or this process alone.

Socket.IO rooms already reach every node through Redis; some work must run on whichever node
holds a thing in memory: the node packaging a stream ends it, each node disconnects its own
sockets of a signed-out user. A command is sent to every node (the sender included) and each
handler acts only on what it holds, so handlers must be idempotent. Without Redis there is one
node and a command is handled in process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from stagecast.realtime.bus import DomainEvent

log = structlog.get_logger(__name__)

CommandHandler = Callable[[dict[str, Any]], Awaitable[None]]
RETRY_SECONDS = 1.0


class ClusterBus:
    """Sends commands to every node and runs the handlers registered for them here."""

    def __init__(self, *, redis_url: str | None, channel: str) -> None:
        self.redis_url = redis_url
        self.channel = channel
        # Its connections' name in Redis's CLIENT LIST: the channel says whose they are.
        self.client_name = f"{channel}:bus"
        self.handlers: dict[str, list[CommandHandler]] = {}
        self._redis: Redis | None = None
        self._listener: asyncio.Task[None] | None = None
        self._first_try = asyncio.Event()  # set once subscribing first worked or failed
        self._running: set[asyncio.Task[None]] = set()
        # Called when commands may have been missed (the subscription was lost, or is back).
        self.on_gap: list[Callable[[], None]] = []

    @property
    def distributed(self) -> bool:
        """Whether commands reach other nodes (Redis is configured)."""
        return self.redis_url is not None

    def on(self, topic: str, handler: CommandHandler) -> None:
        self.handlers.setdefault(topic, []).append(handler)

    def forwarder(self, topics: frozenset[str]) -> Callable[[DomainEvent], None]:
        """An event bus listener that sends committed events of `topics` to every node, as
        commands of the same name carrying the event's payload."""

        def forward(committed: DomainEvent) -> None:
            if committed.name in topics:
                self._in_background(self.send(committed.name, committed.payload))

        return forward

    async def start(self) -> None:
        if self.redis_url is None:
            return
        self._redis = Redis.from_url(self.redis_url, client_name=self.client_name)
        self._listener = asyncio.create_task(self._listen(self._redis), name="cluster-commands")
        # Commands sent once start() returns are heard here too; an unreachable Redis only
        # degrades the node (it keeps trying), it does not hold its start.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_try.wait(), 5)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for task in list(self._running):
            task.cancel()
        if self._redis is not None:
            await self._redis.aclose()

    async def send(self, topic: str, payload: dict[str, Any]) -> None:
        """Send a command to every node (this one included)."""
        if self._redis is None:
            await self._handle(topic, payload)
            return
        message = json.dumps({"topic": topic, "payload": payload}, separators=(",", ":"))
        try:
            await self._redis.publish(self.channel, message)
        except RedisError:
            log.exception("cluster_send_failed", topic=topic)
            await self._handle(topic, payload)  # at least this node acts

    async def _handle(self, topic: str, payload: dict[str, Any]) -> None:
        for handler in self.handlers.get(topic, []):
            try:
                await handler(payload)
            except Exception:
                log.exception("cluster_command_failed", topic=topic)

    async def _listen(self, redis: Redis) -> None:
        lost = False
        while True:
            pubsub = redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._first_try.set()
                if lost:
                    self._gap()  # what was sent while away never comes
                    lost = False
                async for message in pubsub.listen():
                    self._dispatch(message.get("data"))
            except (RedisError, OSError) as error:
                self._first_try.set()
                log.warning("cluster_listen_lost", error=str(error))
                lost = True
                self._gap()
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                with contextlib.suppress(RedisError, RuntimeError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _gap(self) -> None:
        for listener in self.on_gap:
            try:
                listener()
            except Exception:
                log.exception("cluster_gap_listener_failed")

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def _dispatch(self, raw: Any) -> None:
        try:
            message = json.loads(raw)
            topic, payload = message["topic"], message["payload"]
        except (TypeError, ValueError, KeyError):
            log.warning("cluster_message_invalid")
            return
        if not isinstance(topic, str) or not isinstance(payload, dict):
            log.warning("cluster_message_invalid")
            return
        # Handlers run beside the listener, which keeps reading.
        self._in_background(self._handle(topic, payload))
