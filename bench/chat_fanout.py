"""Chat fan-out: how fast one room's chat reaches N viewers, Stagecast beside a Node reference.

What it measures (issue 4)
    One room; N anonymous viewers (default 1,000, then 5,000) on real websocket connections,
    opened from separate client processes; a few signed-in senders (default 3) posting at a
    fixed total rate (default 10 messages/s) for a fixed time (default 20 s). Every message
    carries its send time (`time.time()`, one clock: everything runs on this machine) and every
    viewer computes `now - send time` when the message arrives. The same load then runs, in the
    same invocation, against bench/node_reference/server.mjs: a minimal socket.io v4 server
    that only relays (no auth, no storage, no validation), i.e. what the transport alone costs.

    Stagecast runs as `python -m stagecast serve` on a temporary data directory (SQLite), with
    the HTTP rate limits off and the chat limit raised; the senders are registered and the
    channel created through the HTTP API. Viewers connect without auth and send
    `stream:join {channelId}`; senders connect with `{"token": access_token}` and send
    `chat:send {channelId, message}`, which stores the message and broadcasts `chat:message`.

    The clients are a lean Socket.IO v4 client written here over aiohttp websockets (Engine.IO
    packets by hand: "0" open, "40" connect, "42" events, "43" acks, ping "2" -> pong "3"):
    python-socketio's client is too heavy to run 5,000 of on a 2-core machine.

How to read the table
    connected     viewers that finished the handshake and joined the room (of `viewers` asked)
    sent          messages the senders emitted, on schedule (open loop: a slow ack does not
                  slow the schedule down)
    delivered     messages the viewers received before the window (duration + grace) closed
    complete      delivered / (sent x connected): the share of the fan-out that arrived
    deliveries/s  delivered / duration: the fan-out throughput the server sustained
    p50 / p99 ms  latency of the delivered messages, send time to arrival; it includes the
                  server's work, the kernel, and the queueing inside the client processes

    Goal (at 5,000 viewers, or the largest count run): Stagecast's deliveries/s at least the
    Node reference's, and Stagecast's p99 under 250 ms.

    Clients and server share the machine's cores, equally for both servers: compare the rows
    of one run with each other, not with runs on other machines (nor with runs while something
    else is busy: the load average is printed first). `--py-spy` (or `--py-spy-native`, with C
    frames) samples the Stagecast server during the send window and prints where its time
    went; it slows the server down, so take the table from a run without it.

Usage
    npm install --prefix bench/node_reference
    .venv/bin/python bench/chat_fanout.py [--viewers 1000,5000] [--senders 3] [--rate 10]
        [--duration 20] [--grace 5] [--procs 4] [--batch 200] [--only stagecast|node]
        [--py-spy | --py-spy-native]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import uvloop  # comes with uvicorn[standard]
from kit import percentile
from serving import (
    clean_env,
    free_port,
    launched,
    raise_fd_limit,
    register_creators,
    stagecast_command,
)

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "chat_fanout.json"
NODE_DIR = BENCH_DIR / "node_reference"
GOAL_P99_MS = 250.0
GOAL_VIEWERS = 5000

EventHandler = Callable[[str], None]


# --- what each server is called with ---------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A server under test, as the client processes need to know it."""

    name: str
    ws_url: str
    join_event: str
    send_event: str
    message_event: str
    channel_id: str
    sender_tokens: tuple[str, ...] = ()  # empty: senders connect without auth


@dataclass
class CaseResult:
    server: str
    viewers: int
    connected: int
    still_connected: int
    sent: int
    accepted: int
    delivered: int
    complete_pct: float
    deliveries_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    ack_p50_ms: float
    ack_p99_ms: float
    client_cpu_s: float
    errors: list[str] = field(default_factory=list)
    connect_seconds: float = 0.0
    server_cpu_pct: float = 0.0
    profile: dict[str, Any] | None = None


# --- a lean Socket.IO v4 client over aiohttp websockets ----------------------------------------


class ConnectRefused(Exception):
    """The server answered the Socket.IO connect with an error packet ("44")."""


class SocketIOClient:
    """One Socket.IO v4 connection to the default namespace, websocket transport only."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, auth: dict[str, Any] | None) -> None:
        self.ws = ws
        self.on_event: EventHandler = _ignore
        self.closed = False
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._connect_packet = "40" + (json.dumps(auth) if auth else "")
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._next_ack = 0
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, session: aiohttp.ClientSession, url: str, auth: dict[str, Any] | None = None
    ) -> SocketIOClient:
        ws = await session.ws_connect(url, autoping=True, compress=0, max_msg_size=0)
        client = cls(ws, auth)
        try:
            await client.connected
        except BaseException:
            await client.close()
            raise
        return client

    async def emit(self, name: str, data: Any) -> asyncio.Future[Any]:
        """Send an event asking for an ack; the future resolves with the ack's first value."""
        ack_id = self._next_ack
        self._next_ack += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        await self.ws.send_str(f"42{ack_id}" + json.dumps([name, data], separators=(",", ":")))
        return future

    async def call(self, name: str, data: Any) -> Any:
        return await (await self.emit(name, data))

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(Exception):
            await self.ws.close()

    async def _read(self) -> None:
        ws = self.ws
        try:
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                packet: str = message.data
                if packet.startswith("42"):
                    self.on_event(packet)
                elif packet == "2":
                    await ws.send_str("3")
                else:
                    await self._control(packet)
        finally:
            self.closed = True
            self._fail_pending(ConnectionError("socket closed"))

    async def _control(self, packet: str) -> None:
        kind = packet[:2]
        if kind == "43":
            start = packet.index("[")
            future = self._acks.pop(int(packet[2:start]), None)
            if future is not None and not future.done():
                values = json.loads(packet[start:])
                future.set_result(values[0] if values else None)
        elif packet.startswith("0"):  # Engine.IO open: now connect to the namespace
            await self.ws.send_str(self._connect_packet)
        elif kind == "40" and not self.connected.done():
            self.connected.set_result(None)
        elif kind == "44" and not self.connected.done():
            self.connected.set_exception(ConnectRefused(packet[2:]))
        elif kind == "41" or packet == "1":
            await self.ws.close()

    def _fail_pending(self, error: Exception) -> None:
        waiting = [self.connected, *self._acks.values()]
        self._acks.clear()
        for future in waiting:
            if not future.done():
                future.set_exception(error)
                future.exception()  # mark retrieved: nobody may be waiting any more


def _ignore(_: str) -> None:
    return None


async def open_and_join(
    session: aiohttp.ClientSession, target: Target, auth: dict[str, Any] | None, within: float
) -> SocketIOClient:
    """Connect, join the room, and check the join's ack."""
    async with asyncio.timeout(within):
        client = await SocketIOClient.open(session, target.ws_url, auth)
        try:
            answer = await client.call(target.join_event, {"channelId": target.channel_id})
        except BaseException:
            await client.close()
            raise
    if not isinstance(answer, dict) or not answer.get("ok"):
        await client.close()
        raise ConnectRefused(f"join refused: {answer}")
    return client


# --- client processes ----------------------------------------------------------------------


@dataclass
class Deliveries:
    """What one viewer process received: how many, and each one's latency."""

    count: int = 0
    last_at: float = 0.0
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))


SEND_TIME = re.compile(r'\\"t\\":([0-9.]+)')


def receiver(target: Target, into: Deliveries) -> EventHandler:
    """The event handler of a viewer: note the latency of every chat message.

    The send time is read straight out of the packet text (`\\"t\\":<seconds>` inside the
    JSON-encoded body) rather than by decoding it twice as JSON: at 50,000 deliveries a second
    the clients share the server's two cores, and the cheaper they are the less they inflate
    the latency of either server.
    """
    prefix = '42["' + target.message_event + '",'

    def on_event(packet: str) -> None:
        now = time.time()
        if not packet.startswith(prefix):
            return
        found = SEND_TIME.search(packet)
        if found is None:
            return
        into.count += 1
        into.last_at = now
        into.latencies_ms.append((now - float(found.group(1))) * 1000.0)

    return on_event


async def ramp(
    session: aiohttp.ClientSession, target: Target, count: int, batch: int, within: float
) -> tuple[list[SocketIOClient], list[str]]:
    """Open `count` viewers, `batch` at a time, so the server is not flooded by handshakes."""
    clients: list[SocketIOClient] = []
    errors: list[str] = []
    for start in range(0, count, batch):
        size = min(batch, count - start)
        opened = await asyncio.gather(
            *(open_and_join(session, target, None, within) for _ in range(size)),
            return_exceptions=True,
        )
        for item in opened:
            if isinstance(item, SocketIOClient):
                clients.append(item)
            else:
                errors.append(repr(item))
    return clients, errors


async def close_all(clients: list[SocketIOClient]) -> None:
    if clients:
        await asyncio.wait([asyncio.create_task(c.close()) for c in clients], timeout=5)


async def viewer_main(
    pipe: Connection, target: Target, count: int, batch: int, within: float
) -> None:
    deliveries = Deliveries()
    on_event = receiver(target, deliveries)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        clients, errors = await ramp(session, target, count, batch, within)
        for client in clients:
            client.on_event = on_event
        pipe.send({"connected": len(clients), "errors": _summarize(errors)})
        t0, stop_at = await asyncio.to_thread(pipe.recv)
        await asyncio.sleep(max(0.0, t0 - time.time()))
        cpu_before = time.process_time()
        await asyncio.sleep(max(0.0, stop_at - time.time()))
        pipe.send(
            {
                "delivered": deliveries.count,
                "still_connected": sum(not c.closed for c in clients),
                "latencies": deliveries.latencies_ms.tobytes(),
                "cpu_s": time.process_time() - cpu_before,
            }
        )
        await close_all(clients)


@dataclass
class Sent:
    """The senders' messages: one ack future each, and how long each ack took."""

    acks: list[asyncio.Future[Any]] = field(default_factory=list)
    ack_ms: array[float] = field(default_factory=lambda: array("d"))

    def track(self, ack: asyncio.Future[Any], at: float) -> None:
        self.acks.append(ack)
        ack.add_done_callback(lambda _: self.ack_ms.append((time.time() - at) * 1000.0))


async def send_on_schedule(
    clients: list[SocketIOClient], target: Target, total: int, rate: float, t0: float
) -> Sent:
    """Emit `total` messages at `rate` per second from t0, round robin over the senders."""
    sent = Sent()
    for index in range(total):
        delay = t0 + index / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sender = index % len(clients)
        now = time.time()
        body = json.dumps({"t": now, "s": sender, "n": index}, separators=(",", ":"))
        payload = {"channelId": target.channel_id, "message": body}
        sent.track(await clients[sender].emit(target.send_event, payload), now)
    return sent


async def collect_acks(sent: Sent, until: float) -> dict[str, Any]:
    """Wait for the acks (until the window closes) and count the ok ones."""
    if sent.acks:
        await asyncio.wait(sent.acks, timeout=max(0.1, until - time.time()))
    accepted, errors = 0, []
    for ack in sent.acks:
        if not ack.done():
            errors.append("no ack")
        elif ack.exception() is not None:
            errors.append(repr(ack.exception()))
        elif isinstance(ack.result(), dict) and ack.result().get("ok"):
            accepted += 1
        else:
            errors.append(json.dumps(ack.result())[:300])
    return {"sent": len(sent.acks), "accepted": accepted, "errors": errors}


async def sender_main(
    pipe: Connection, target: Target, senders: int, rate: float, duration: float, within: float
) -> None:
    auths: list[dict[str, Any] | None] = [{"token": t} for t in target.sender_tokens]
    auths = auths or [None] * senders
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        clients = [await open_and_join(session, target, auth, within) for auth in auths]
        pipe.send({"connected": len(clients), "errors": []})
        t0, stop_at = await asyncio.to_thread(pipe.recv)
        cpu_before = time.process_time()
        sent = await send_on_schedule(clients, target, round(rate * duration), rate, t0)
        outcome = await collect_acks(sent, stop_at)
        pipe.send(
            {
                "sent": outcome["sent"],
                "accepted": outcome["accepted"],
                "errors": _summarize(outcome["errors"]),
                "ack_latencies": sent.ack_ms.tobytes(),
                "cpu_s": time.process_time() - cpu_before,
            }
        )
        await close_all(clients)


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    raise_fd_limit()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def viewer_process(pipe: Connection, target: Target, count: int, batch: int, within: float) -> None:
    run_loop(viewer_main(pipe, target, count, batch, within))


def sender_process(
    pipe: Connection, target: Target, senders: int, rate: float, duration: float, within: float
) -> None:
    run_loop(sender_main(pipe, target, senders, rate, duration, within))


def _summarize(errors: list[str]) -> list[str]:
    """The distinct errors, most frequent first, with their counts."""
    return [f"{n} x {text[:300]}" for text, n in Counter(errors).most_common(5)]


# --- the servers ---------------------------------------------------------------------------


def stagecast_env(data_dir: Path) -> dict[str, str]:
    return clean_env(
        STAGECAST_DATA_DIR=str(data_dir),
        STAGECAST_RATE_LIMIT_ENABLED="false",
        STAGECAST_RATE_LIMIT_CHAT="1000000/10 seconds",
        STAGECAST_LOG_LEVEL="WARNING",
        STAGECAST_RTMP_PORT="0",  # not measured here; never clash with a running server
    )


def prepare_stagecast(base_url: str, senders: int) -> tuple[str, tuple[str, ...]]:
    """Register the senders (each gets a channel); the room is the first one's channel:
    (channel id, access tokens)."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        senders_made = register_creators(http, "fanout_sender", senders)
    return senders_made[0].channel_id, tuple(s.access_token for s in senders_made)


@contextlib.contextmanager
def stagecast_server(senders: int) -> Iterator[tuple[Target, int]]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="stagecast-fanout-") as tmp:
        data_dir, log = Path(tmp), Path(tmp) / "server.log"
        base = f"http://127.0.0.1:{port}"
        with launched(
            stagecast_command(port),
            env=stagecast_env(data_dir),
            cwd=data_dir,
            log=log,
            ready_url=f"{base}/readyz",
        ) as process:
            channel_id, tokens = prepare_stagecast(base, senders)
            yield (
                Target(
                    name="stagecast",
                    ws_url=f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
                    join_event="stream:join",
                    send_event="chat:send",
                    message_event="chat:message",
                    channel_id=channel_id,
                    sender_tokens=tokens,
                ),
                process.pid,
            )


@contextlib.contextmanager
def node_server(_senders: int) -> Iterator[tuple[Target, int]]:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "socket.io").is_dir():
        raise RuntimeError("needs node and `npm install --prefix bench/node_reference`")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="node-fanout-") as tmp:
        log = Path(tmp) / "server.log"
        command = [node, str(NODE_DIR / "server.mjs"), str(port)]
        with launched(
            command,
            env=dict(os.environ),
            cwd=NODE_DIR,
            log=log,
            ready_url=f"http://127.0.0.1:{port}/health",
        ) as process:
            yield (
                Target(
                    name="node",
                    ws_url=f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
                    join_event="join",
                    send_event="send",
                    message_event="message",
                    channel_id="room",
                ),
                process.pid,
            )


# --- one case: a server and a viewer count -------------------------------------------------


@dataclass
class Workers:
    processes: list[multiprocessing.process.BaseProcess]
    pipes: list[Connection]  # the viewer processes' pipes, then the sender process's


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def start_workers(target: Target, viewers: int, args: argparse.Namespace) -> Workers:
    context = multiprocessing.get_context("spawn")
    shares = [n for n in split(viewers, args.procs) if n > 0]
    batch = max(1, args.batch // len(shares))
    jobs: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
        (viewer_process, (target, share, batch, args.connect_timeout)) for share in shares
    ]
    jobs.append(
        (sender_process, (target, args.senders, args.rate, args.duration, args.connect_timeout))
    )
    workers = Workers([], [])
    for function, job_args in jobs:
        mine, theirs = context.Pipe()
        worker = context.Process(target=function, args=(theirs, *job_args), daemon=True)
        worker.start()
        workers.processes.append(worker)
        workers.pipes.append(mine)
    return workers


def receive(pipe: Connection, deadline: float) -> dict[str, Any]:
    if not pipe.poll(max(0.0, deadline - time.time())):
        raise TimeoutError("a client process did not answer in time")
    answer: dict[str, Any] = pipe.recv()
    return answer


def stop_workers(workers: Workers) -> None:
    for worker in workers.processes:
        worker.join(timeout=10)
    for worker in workers.processes:
        if worker.is_alive():
            worker.terminate()
            worker.join(timeout=5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_case(target: Target, pid: int, viewers: int, args: argparse.Namespace) -> CaseResult:
    started = time.time()
    workers = start_workers(target, viewers, args)
    try:
        ready = [receive(pipe, started + args.ramp_timeout) for pipe in workers.pipes]
        connect_seconds = time.time() - started
        t0 = time.time() + 1.0
        stop_at = t0 + args.duration + args.grace
        profiling = (args.py_spy or args.py_spy_native) and target.name == "stagecast"
        profiler = start_profiler(pid, args) if profiling else None
        for pipe in workers.pipes:
            pipe.send((t0, stop_at))
        time.sleep(max(0.0, t0 - time.time()))
        cpu_before = cpu_seconds(pid)
        done = [receive(pipe, stop_at + 60) for pipe in workers.pipes]
        server_cpu = (cpu_seconds(pid) - cpu_before) / (time.time() - t0)
    finally:
        stop_workers(workers)
    result = summarize_case(target.name, viewers, ready, done, args.duration)
    result.connect_seconds = round(connect_seconds, 1)
    result.server_cpu_pct = round(100 * server_cpu, 1)
    if profiler is not None:
        result.profile = finish_profiler(*profiler)
    return result


def latencies_of(answers: list[dict[str, Any]], key: str) -> list[float]:
    values: array[float] = array("d")
    for answer in answers:
        values.frombytes(answer[key])
    return sorted(values)


def summarize_case(
    server: str,
    viewers: int,
    ready: list[dict[str, Any]],
    done: list[dict[str, Any]],
    duration: float,
) -> CaseResult:
    viewer_done, sender_done = done[:-1], done[-1]
    connected = sum(r["connected"] for r in ready[:-1])
    delivered = sum(d["delivered"] for d in viewer_done)
    latencies = latencies_of(viewer_done, "latencies")
    acks = latencies_of([sender_done], "ack_latencies")
    possible = sender_done["sent"] * connected
    return CaseResult(
        server=server,
        viewers=viewers,
        connected=connected,
        still_connected=sum(d["still_connected"] for d in viewer_done),
        sent=sender_done["sent"],
        accepted=sender_done["accepted"],
        delivered=delivered,
        complete_pct=round(100.0 * delivered / possible, 2) if possible else 0.0,
        deliveries_per_s=round(delivered / duration, 1),
        p50_ms=round(percentile(latencies, 0.50), 1),
        p99_ms=round(percentile(latencies, 0.99), 1),
        max_ms=round(latencies[-1], 1) if latencies else float("nan"),
        ack_p50_ms=round(percentile(acks, 0.50), 1),
        ack_p99_ms=round(percentile(acks, 0.99), 1),
        client_cpu_s=round(sum(d["cpu_s"] for d in done), 1),
        errors=[e for r in ready for e in r["errors"]] + sender_done["errors"],
    )


# --- profiling (optional) ------------------------------------------------------------------


def py_spy_path() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start_profiler(
    pid: int, args: argparse.Namespace
) -> tuple[subprocess.Popen[bytes], Path] | None:
    """`py-spy record` on the server for the send window, as collapsed stacks."""
    tool = py_spy_path()
    if tool is None:
        print("  (py-spy not found: .venv/bin/pip install py-spy)")
        return None
    out = Path(tempfile.mkstemp(prefix="chat-fanout-", suffix=".pyspy.txt")[1])
    command = [tool, "record", "--pid", str(pid), "--duration", str(max(1, int(args.duration)))]
    command += ["--rate", "100", "--threads", "--format", "raw", "--output", str(out)]
    # --native (C frames too: the event loop's I/O, the GC) needs to pause the process.
    command.append("--native" if args.py_spy_native else "--nonblocking")
    process = subprocess.Popen(  # noqa: S603 - our own fixed command line
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    return process, out


def finish_profiler(process: subprocess.Popen[bytes], out: Path) -> dict[str, Any]:
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    raw = out.read_text() if out.exists() else ""
    out.unlink(missing_ok=True)
    if not raw:
        said = stderr.decode(errors="replace").strip()[-500:]
        return {"error": f"py-spy wrote nothing (exit {process.returncode}): {said}"}
    return top_functions(raw)


def frame_name(frame: str) -> str:
    """`handler (path/to/module.py:123)` -> `handler (module.py)`."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rstrip(')').split(':')[0]).name})" if where else name


def top_functions(raw: str, limit: int = 15) -> dict[str, Any]:
    """The event loop thread's hottest frames (self and inclusive), from collapsed stacks.

    Lines look like `thread (123): MainThread;frame;frame;... count` (py-spy --threads).
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    main = other = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        thread, *frames = stack.split(";")
        if not thread.endswith(": MainThread") or not frames:
            other += int(count_text)
            continue
        names = [frame_name(f) for f in frames]
        main += int(count_text)
        own[names[-1]] += int(count_text)
        for name in set(under_the_loop(names)):
            inclusive[name] += int(count_text)

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / main, 1)) for f, n in counter.most_common(limit)]

    return {
        "main_thread_samples": main,
        "other_thread_samples": other,
        "self_pct": share(own),
        "inclusive_pct": share(inclusive),
    }


def under_the_loop(names: list[str]) -> list[str]:
    """The Python frames a loop callback runs (not runpy, click, uvicorn.run, the loop itself)."""
    starts = [i for i, name in enumerate(names) if name.startswith("Runner.run ")]
    below = names[starts[-1] + 1 :] if starts else names
    return [name for name in below if name.endswith(".py)")]


def print_profile(result: CaseResult) -> None:
    profile = result.profile
    if not profile:
        return
    if "error" in profile:
        print(f"  {profile['error']}")
        return
    print(
        f"  py-spy: {profile['main_thread_samples']} samples of the event loop thread (and "
        f"{profile['other_thread_samples']} of other threads); % of the loop thread's samples"
    )
    print("  top self time:")
    for frame, pct in profile["self_pct"]:
        print(f"    {pct:5.1f}%  {frame}")
    print("  top inclusive time (Python frames run by the event loop):")
    for frame, pct in profile["inclusive_pct"]:
        print(f"    {pct:5.1f}%  {frame}")


# --- output --------------------------------------------------------------------------------

# (title, width, attribute, format)
COLUMNS = (
    ("server", 10, "server", "{}"),
    ("viewers", 7, "viewers", "{}"),
    ("connected", 9, "connected", "{}"),
    ("sent", 5, "sent", "{}"),
    ("delivered", 9, "delivered", "{}"),
    ("complete", 8, "complete_pct", "{:.1f}%"),
    ("deliveries/s", 12, "deliveries_per_s", "{:.0f}"),
    ("p50 ms", 7, "p50_ms", "{:.1f}"),
    ("p99 ms", 7, "p99_ms", "{:.1f}"),
    ("server cpu", 10, "server_cpu_pct", "{:.0f}%"),
)


def table(results: list[CaseResult]) -> str:
    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, (_, width, _, _)) in enumerate(zip(cells, COLUMNS, strict=True))
        )

    header = line([title for title, _, _, _ in COLUMNS])
    rows = [line([fmt.format(getattr(r, key)) for _, _, key, fmt in COLUMNS]) for r in results]
    return "\n".join([header, "-" * len(header), *rows])


def goal(results: list[CaseResult]) -> dict[str, Any]:
    """Stagecast's deliveries/s >= Node's and p99 < 250 ms, at 5,000 viewers (or the most run)."""
    counts = sorted({r.viewers for r in results})
    at = GOAL_VIEWERS if GOAL_VIEWERS in counts else counts[-1]
    ours = next((r for r in results if r.server == "stagecast" and r.viewers == at), None)
    theirs = next((r for r in results if r.server == "node" and r.viewers == at), None)
    if ours is None or theirs is None:
        return {"viewers": at, "met": None, "why": "needs both servers at this viewer count"}
    throughput_met = ours.deliveries_per_s >= theirs.deliveries_per_s
    p99_met = ours.p99_ms < GOAL_P99_MS
    return {
        "viewers": at,
        "met": throughput_met and p99_met,
        "stagecast_deliveries_per_s": ours.deliveries_per_s,
        "node_deliveries_per_s": theirs.deliveries_per_s,
        "throughput_ratio": round(ours.deliveries_per_s / max(theirs.deliveries_per_s, 1e-9), 3),
        "throughput_met": throughput_met,
        "stagecast_p99_ms": ours.p99_ms,
        "p99_limit_ms": GOAL_P99_MS,
        "p99_met": p99_met,
    }


def describe_goal(verdict: dict[str, Any]) -> str:
    if verdict["met"] is None:
        return f"Goal at {verdict['viewers']} viewers: not evaluated ({verdict['why']})"
    ours, theirs = verdict["stagecast_deliveries_per_s"], verdict["node_deliveries_per_s"]
    p99 = verdict["stagecast_p99_ms"]
    throughput = "ok" if verdict["throughput_met"] else f"short by {theirs - ours:.0f}/s"
    latency = "ok" if verdict["p99_met"] else f"over by {p99 - GOAL_P99_MS:.1f} ms"
    return "\n".join(
        [
            f"Goal at {verdict['viewers']} viewers (Stagecast deliveries/s >= Node's, "
            f"p99 < {GOAL_P99_MS:.0f} ms): " + ("MET" if verdict["met"] else "NOT MET"),
            f"  deliveries/s: Stagecast {ours:.0f} vs Node {theirs:.0f} "
            f"(x{verdict['throughput_ratio']}) -> {throughput}",
            f"  p99: Stagecast {p99:.1f} ms (limit {GOAL_P99_MS:.0f} ms) -> {latency}",
        ]
    )


def machine() -> dict[str, Any]:
    node = shutil.which("node")
    version = None
    if node:
        version = subprocess.run(  # noqa: S603 - our own fixed command line
            [node, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "node": version,
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def write_json(
    results: list[CaseResult], args: argparse.Namespace, verdict: dict[str, Any]
) -> None:
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "chat_fanout",
        "machine": machine(),  # load_average here is the one after the run
        "settings": vars(args),
        "results": [asdict(r) for r in results],
        "goal": verdict,
    }
    RESULTS_FILE.write_text(json.dumps(document, indent=2) + "\n")


# --- main ----------------------------------------------------------------------------------

SERVERS = {"stagecast": stagecast_server, "node": node_server}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Chat fan-out: Stagecast beside a Node reference")
    parser.add_argument("--viewers", default="1000,5000", help="viewer counts, comma separated")
    parser.add_argument("--senders", type=int, default=3)
    parser.add_argument("--rate", type=float, default=10.0, help="messages per second, in all")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of sending")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds to wait for stragglers")
    parser.add_argument("--procs", type=int, default=4, help="viewer client processes")
    parser.add_argument("--batch", type=int, default=200, help="handshakes in flight at once")
    parser.add_argument("--connect-timeout", type=float, default=60.0)
    parser.add_argument("--ramp-timeout", type=float, default=600.0)
    parser.add_argument("--only", choices=sorted(SERVERS), help="run one server only")
    parser.add_argument("--py-spy", action="store_true", help="profile the servers while sending")
    parser.add_argument("--py-spy-native", action="store_true", help="--py-spy, with C frames")
    args = parser.parse_args(argv)
    args.viewers = [int(v) for v in args.viewers.split(",") if v.strip()]
    return args


def run_one(name: str, viewers: int, args: argparse.Namespace) -> CaseResult:
    with SERVERS[name](args.senders) as (target, pid):
        print(f"{name}: {viewers} viewers ...", flush=True)
        result = run_case(target, pid, viewers, args)
    print(
        f"  connected {result.connected} in {result.connect_seconds} s; delivered "
        f"{result.delivered} ({result.complete_pct:.1f}%); p50 {result.p50_ms:.1f} ms, "
        f"p99 {result.p99_ms:.1f} ms; chat:send ack p50 {result.ack_p50_ms:.1f} ms; "
        f"server cpu {result.server_cpu_pct:.0f}%",
        flush=True,
    )
    for error in result.errors:
        print(f"  error: {error}")
    print_profile(result)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    info = machine()
    print(
        f"cores: {info['cores']} (usable {info['usable_cores']}); "
        f"python {info['python']}; node {info['node']}; "
        f"load average before {info['load_average']}"
    )
    print(
        f"load: {args.senders} senders, {args.rate:g} msg/s for {args.duration:g} s "
        f"(+{args.grace:g} s grace); viewers spread over {args.procs} client processes\n"
    )
    if info["load_average"][0] > 0.5 * info["usable_cores"]:
        print("warning: the machine is already busy; latencies will be inflated\n")
    servers = [args.only] if args.only else ["stagecast", "node"]
    results = [run_one(name, viewers, args) for viewers in args.viewers for name in servers]
    verdict = goal(results)
    print("\n" + table(results) + "\n")
    print(describe_goal(verdict))
    write_json(results, args, verdict)
    print(f"\nload average after: {[round(x, 2) for x in os.getloadavg()]}")
    print(f"JSON: {RESULTS_FILE.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
