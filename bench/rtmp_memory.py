"""RTMP memory: what hostile connections that never publish cost the server (issue 13).

What it measures
    A real `stagecast serve` (as the other benchmarks start it) and one client process that
    opens N RTMP connections to it (default 1,000, all from 127.0.0.1), completes the handshake
    on each and then, depending on the attack, makes the server hold as much as it will before
    any publish is authorised:

    handshake-only     nothing after the handshake: the fixed cost of an open connection
    under-the-cap      connect, then an unfinished message just under the server's default
                       pre-publish cap (--fill, 30 KiB): the most a connection may hold
    partial-messages   Set Chunk Size 65536, then unfinished 8 MiB messages on four chunk
                       streams, round robin, up to --budget bytes (what the server before the
                       limits accepted: 2 x its 8 MiB message limit)
    huge-chunk-size    Set Chunk Size 2^31-1, then one 8 MiB message in a single chunk, all but
                       its last byte (the server before the limits kept the whole chunk)
    publish-then-flood connect, createStream and publish with a made-up key in one write, then
                       --flood bytes arriving while the server looks the key up
    pings-unread       pings (each asks for a pong) up to --flood bytes from a client that
                       never reads, so that the answers pile up in the server

    The server's resident memory (VmRSS of /proc/<pid>/status) is sampled every 20 ms: before
    (the server warmed up by one honest handshake), the peak during the attack, while the
    connections that are still open are held, and after the client has closed them all. Each
    attack runs on a fresh server. The server is started with its connection caps raised to
    admit N connections from one address, and its pre-publish idle and auth timeouts (and
    the publisher timeout, which the server before the limits applied before publish too)
    raised to 600 s, so that what it lets a connection hold is measured rather than how soon it
    drops it.

How to read the table
    held       connections still open when the attack had settled (the server closed the rest)
    closed     connections the server closed (over a cap), each with one log line
    tracebacks "Traceback" in the server's log: must be 0 (bad input is a log line, not a crash)
    peak MB    the highest RSS during the attack, minus RSS before
    held MB    RSS while the connections that are open are held, minus RSS before
    KiB/conn   peak MB over N: what one hostile connection cost at worst

    Goal (issue 13): at 1,000 connections the peak stays under 100 MB above RSS before, for
    every attack.

Usage
    .venv/bin/python bench/rtmp_memory.py [--connections 1000] [--attacks a,b] [--batch 100]
        [--fill 30720] [--budget 16646144] [--flood 4194304] [--hold 3]
        [--server-env STAGECAST_NAME=VALUE]
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
import socket
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import uvloop  # comes with uvicorn[standard]
from kit import source_version
from serving import (
    clean_env,
    free_port,
    launched,
    raise_fd_limit,
    stagecast_command,
)

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "rtmp_memory.json"
GOAL_CONNECTIONS = 1000
GOAL_MB = 100.0
HANDSHAKE = 1536
OLD_MESSAGE_LIMIT = 8 * 1024 * 1024  # the largest message the server before the limits took
SAMPLE_EVERY = 0.02


# --- what the hostile client sends (bytes built here, not with the server's own encoder) ---


def basic_header(fmt: int, csid: int) -> bytes:
    return bytes(((fmt << 6) | csid,))  # chunk stream ids 2-63 only, all we need


def message_header(csid: int, length: int, type_id: int, stream_id: int = 0) -> bytes:
    """A type 0 chunk header announcing a message of `length` bytes."""
    return (
        basic_header(0, csid)
        + bytes(3)  # timestamp 0
        + length.to_bytes(3, "big")
        + bytes((type_id,))
        + stream_id.to_bytes(4, "little")
    )


def set_chunk_size(size: int) -> bytes:
    return message_header(2, 4, 1) + struct.pack(">I", size)


def amf0_string(text: str) -> bytes:
    data = text.encode()
    return b"\x02" + len(data).to_bytes(2, "big") + data


def connect_command() -> bytes:
    """`connect(1, {app: "live"})` as one message in 128-byte chunks (it is shorter)."""
    body = (
        amf0_string("connect")
        + b"\x00"
        + struct.pack(">d", 1.0)
        + b"\x03"
        + (3).to_bytes(2, "big")
        + b"app"
        + amf0_string("live")
        + b"\x00\x00\x09"
    )
    return message_header(3, len(body), 20) + body


def chunked(csid: int, length: int, payload_size: int, chunk_size: int) -> Iterator[bytes]:
    """The chunks of a message announced at `length` bytes carrying only `payload_size`."""
    sent = 0
    while sent < payload_size:
        size = min(chunk_size, payload_size - sent)
        header = message_header(csid, length, 9, 1) if sent == 0 else basic_header(3, csid)
        yield header + bytes(size)
        sent += size


def command(name: str, transaction: float, *strings: str, stream_id: int = 0) -> bytes:
    """An AMF0 command `name(transaction, null, *strings)` as one message (under 128 bytes)."""
    body = amf0_string(name) + b"\x00" + struct.pack(">d", transaction) + b"\x05"
    body += b"".join(amf0_string(s) for s in strings)
    return message_header(3, len(body), 20, stream_id) + body


def ping_request(value: int) -> bytes:
    return message_header(2, 6, 4) + struct.pack(">HI", 6, value & 0xFFFFFFFF)


def filler(total: int) -> Iterator[bytes]:
    while total > 0:
        size = min(65536, total)
        yield bytes(size)
        total -= size


def handshake_only(_: argparse.Namespace) -> Iterator[bytes]:
    return iter(())


def under_the_cap(args: argparse.Namespace) -> Iterator[bytes]:
    yield connect_command()
    yield from chunked(4, args.fill + 1, args.fill, 128)


def partial_messages(args: argparse.Namespace) -> Iterator[bytes]:
    chunk_size, streams = 65536, (4, 5, 6, 7)
    yield set_chunk_size(chunk_size)
    per_stream = OLD_MESSAGE_LIMIT - chunk_size  # one chunk short of finishing each message
    generators = [chunked(csid, OLD_MESSAGE_LIMIT, per_stream, chunk_size) for csid in streams]
    sent = 0
    while generators and sent < args.budget:
        for generator in list(generators):
            piece = next(generator, None)
            if piece is None:
                generators.remove(generator)
                continue
            yield piece
            sent += len(piece)


def huge_chunk_size(_: argparse.Namespace) -> Iterator[bytes]:
    yield set_chunk_size(0x7FFFFFFF)
    yield message_header(4, OLD_MESSAGE_LIMIT, 9, 1)
    yield from filler(OLD_MESSAGE_LIMIT - 1)


def publish_then_flood(args: argparse.Namespace) -> Iterator[bytes]:
    # The whole conversation at once, a made-up key, then bytes that arrive while the server
    # looks the key up (its database) and are only parsed after.
    yield (
        connect_command()
        + command("createStream", 2)
        + command("publish", 3, "sk_not_a_key", "live", stream_id=1)
    )
    yield from filler(args.flood)


def pings_unread(args: argparse.Namespace) -> Iterator[bytes]:
    # Every ping asks for a pong this client never reads: the answers pile up in the server.
    pings = b"".join(ping_request(n) for n in range(3640))  # 64 KiB
    for _ in range(max(1, args.flood // len(pings))):
        yield pings


@dataclass(frozen=True)
class Attack:
    payload: Callable[[argparse.Namespace], Iterator[bytes]]
    reads: bool = True  # False: the client never reads what the server sends


ATTACKS: dict[str, Attack] = {
    "handshake-only": Attack(handshake_only),
    "under-the-cap": Attack(under_the_cap),
    "partial-messages": Attack(partial_messages),
    "huge-chunk-size": Attack(huge_chunk_size),
    "publish-then-flood": Attack(publish_then_flood),
    "pings-unread": Attack(pings_unread, reads=False),
}


# --- the client process --------------------------------------------------------------------


@dataclass
class Hostile:
    """One hostile connection and what became of it."""

    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    handshaken: bool = False
    sent: int = 0
    closed_by_server: bool = False
    error: str | None = None
    watcher: asyncio.Task[None] | None = None


async def watch_for_close(reader: asyncio.StreamReader, into: Hostile) -> None:
    """Read (and drop) what the server sends until it closes the connection."""
    with contextlib.suppress(OSError):
        while await reader.read(65536):
            pass
    into.closed_by_server = True


async def open_connection(
    port: int, *, reads: bool
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if reads:
        return await asyncio.open_connection("127.0.0.1", port)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill up fast
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock)


async def attack_one(
    port: int, name: str, args: argparse.Namespace, gate: asyncio.Semaphore
) -> Hostile:
    attack, outcome = ATTACKS[name], Hostile()
    try:
        async with gate:
            reader, writer = await asyncio.wait_for(open_connection(port, reads=attack.reads), 30)
            outcome.reader, outcome.writer = reader, writer
            writer.write(b"\x03" + bytes(HANDSHAKE))
            reply = await asyncio.wait_for(reader.readexactly(1 + 2 * HANDSHAKE), 30)
            writer.write(reply[1 : 1 + HANDSHAKE])  # C2 echoes S1
            await writer.drain()
            outcome.handshaken = True
        if attack.reads:
            outcome.watcher = asyncio.create_task(watch_for_close(reader, outcome))
        else:
            writer.transport.pause_reading()
        for piece in attack.payload(args):
            if outcome.closed_by_server:
                break
            writer.write(piece)
            await asyncio.wait_for(writer.drain(), 60)
            outcome.sent += len(piece)
    except (OSError, asyncio.IncompleteReadError) as error:
        outcome.error = type(error).__name__
    except RuntimeError:  # uvloop: writing to a transport the server's reset has closed
        outcome.error = "closed"
    except TimeoutError:
        outcome.error = "timeout"
    return outcome


async def client_main(pipe: Connection, port: int, attack: str, args: argparse.Namespace) -> None:
    gate = asyncio.Semaphore(args.batch)
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(attack_one(port, attack, args, gate) for _ in range(args.connections))
    )
    sent_seconds = time.monotonic() - started
    for outcome in outcomes:
        # A client that never read learns now whether the server closed on it.
        reader, writer = outcome.reader, outcome.writer
        if reader and writer and outcome.watcher is None and outcome.error is None:
            writer.transport.resume_reading()
            outcome.watcher = asyncio.create_task(watch_for_close(reader, outcome))
    await asyncio.sleep(args.settle)  # let the server act on the last bytes
    errors = Counter(o.error for o in outcomes if o.error)
    pipe.send(
        {
            "handshaken": sum(o.handshaken for o in outcomes),
            "held": sum(o.handshaken and not o.closed_by_server and not o.error for o in outcomes),
            "closed_by_server": sum(o.closed_by_server or bool(o.error) for o in outcomes),
            "sent_bytes": sum(o.sent for o in outcomes),
            "send_seconds": round(sent_seconds, 2),
            "errors": dict(errors.most_common(5)),
        }
    )
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "close them"
    for outcome in outcomes:
        if outcome.writer is not None:
            outcome.writer.close()
        if outcome.watcher is not None:
            outcome.watcher.cancel()
    await asyncio.sleep(0.2)
    pipe.send({"closed": True})


def client_process(pipe: Connection, port: int, attack: str, args: argparse.Namespace) -> None:
    raise_fd_limit()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(client_main(pipe, port, attack, args))


# --- the server and its memory -------------------------------------------------------------


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


class RssSampler:
    """Samples a process's RSS in a thread; `peak` is the highest since `start`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.peak = rss_mb(self.pid)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_mb(self.pid))


def steady_rss(pid: int, seconds: float = 1.0) -> float:
    """The median of RSS samples over `seconds`."""
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(rss_mb(pid))
        time.sleep(0.05)
    samples.sort()
    return samples[len(samples) // 2]


def honest_handshake(port: int) -> bool:
    """One RTMP handshake, then close: warms the server up, and proves it still answers."""

    async def run() -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"\x03" + bytes(HANDSHAKE))
            reply = await asyncio.wait_for(reader.readexactly(1 + 2 * HANDSHAKE), 10)
            writer.write(reply[1 : 1 + HANDSHAKE])
            await writer.drain()
            return reply[0] == 3
        finally:
            writer.close()

    try:
        return asyncio.run(run())
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False


def server_env(data_dir: Path, rtmp_port: int, args: argparse.Namespace) -> dict[str, str]:
    room = str(args.connections + 16)
    env = clean_env(
        STAGECAST_DATA_DIR=str(data_dir),
        STAGECAST_RTMP_HOST="127.0.0.1",
        STAGECAST_RTMP_PORT=str(rtmp_port),
        STAGECAST_RATE_LIMIT_ENABLED="false",
        STAGECAST_LOG_LEVEL="WARNING",
        # Every connection comes from 127.0.0.1: admit them all.
        STAGECAST_RTMP_MAX_CONNECTIONS=room,
        STAGECAST_RTMP_MAX_CONNECTIONS_PER_IP=room,
        # Hold what is allowed for the whole measurement instead of timing it out.
        STAGECAST_RTMP_IDLE_TIMEOUT_SECONDS="600",
        STAGECAST_RTMP_AUTH_TIMEOUT_SECONDS="600",
        STAGECAST_MEDIA_PUBLISHER_TIMEOUT_SECONDS="600",
    )
    for setting in args.server_env:
        name, _, value = setting.partition("=")
        env[name] = value
    return env


@contextlib.contextmanager
def stagecast_server(args: argparse.Namespace) -> Iterator[tuple[int, int, Path]]:
    """(server pid, RTMP port, server log) of a fresh `stagecast serve`."""
    port, rtmp_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="stagecast-rtmp-memory-") as tmp:
        data_dir, log = Path(tmp), Path(tmp) / "server.log"
        with launched(
            stagecast_command(port),
            env=server_env(data_dir, rtmp_port, args),
            cwd=data_dir,
            log=log,
            ready_url=f"http://127.0.0.1:{port}/readyz",
        ) as process:
            yield process.pid, rtmp_port, log


@dataclass
class AttackResult:
    attack: str
    connections: int
    handshaken: int = 0
    held: int = 0
    closed: int = 0
    tracebacks: int = 0
    close_lines: int = 0
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_held_mb: float = 0.0
    rss_after_mb: float = 0.0
    sent_mb: float = 0.0
    send_seconds: float = 0.0
    serves_after: bool = False
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def peak_delta_mb(self) -> float:
        return round(self.rss_peak_mb - self.rss_before_mb, 1)

    @property
    def held_delta_mb(self) -> float:
        return round(self.rss_held_mb - self.rss_before_mb, 1)

    @property
    def kib_per_connection(self) -> float:
        return round(self.peak_delta_mb * 1024 / max(1, self.connections), 1)


def receive(pipe: Connection, client: multiprocessing.process.BaseProcess, within: float) -> Any:
    deadline = time.monotonic() + within
    while not pipe.poll(1.0):
        if not client.is_alive():
            raise RuntimeError(f"the client process exited ({client.exitcode})")
        if time.monotonic() > deadline:
            raise TimeoutError("the client process did not answer in time")
    return pipe.recv()


def run_attack(attack: str, args: argparse.Namespace) -> AttackResult:
    result = AttackResult(attack, args.connections)
    with stagecast_server(args) as (pid, rtmp_port, log):
        honest_handshake(rtmp_port)
        time.sleep(1.0)
        result.rss_before_mb = steady_rss(pid)
        sampler = RssSampler(pid)
        sampler.start()
        context = multiprocessing.get_context("spawn")
        mine, theirs = context.Pipe()
        client = context.Process(
            target=client_process, args=(theirs, rtmp_port, attack, args), daemon=True
        )
        client.start()
        theirs.close()
        try:
            report = receive(mine, client, args.timeout)
            result.rss_held_mb = steady_rss(pid, args.hold)
            mine.send("close")
            receive(mine, client, 60)
        finally:
            client.join(timeout=10)
            if client.is_alive():
                client.terminate()
        time.sleep(2.0)
        sampler.stop()
        result.rss_peak_mb = sampler.peak
        result.rss_after_mb = steady_rss(pid)
        result.serves_after = honest_handshake(rtmp_port)
        text = log.read_text(errors="replace")
    result.handshaken = report["handshaken"]
    result.held = report["held"]
    result.closed = report["closed_by_server"]
    result.sent_mb = round(report["sent_bytes"] / 2**20, 1)
    result.send_seconds = report["send_seconds"]
    result.errors = report["errors"]
    result.tracebacks = text.count("Traceback")
    result.close_lines = text.count("rtmp_connection_closed")
    return result


# --- report --------------------------------------------------------------------------------


def table(results: list[AttackResult]) -> str:
    header = (
        f"{'attack':<18} {'conns':>6} {'handshaken':>10} {'held':>6} {'closed':>6} "
        f"{'tracebacks':>10} {'before MB':>9} {'peak MB':>8} {'held MB':>8} {'after MB':>8} "
        f"{'KiB/conn':>8} {'serves':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.attack:<18} {r.connections:>6} {r.handshaken:>10} {r.held:>6} {r.closed:>6} "
            f"{r.tracebacks:>10} {r.rss_before_mb:>9.1f} {r.peak_delta_mb:>+8.1f} "
            f"{r.held_delta_mb:>+8.1f} {r.rss_after_mb - r.rss_before_mb:>+8.1f} "
            f"{r.kib_per_connection:>8.1f} {'yes' if r.serves_after else 'NO':>6}"
        )
    return "\n".join(lines)


def goal(results: list[AttackResult]) -> dict[str, Any]:
    worst = max(results, key=lambda r: r.peak_delta_mb)
    scaled = worst.kib_per_connection * GOAL_CONNECTIONS / 1024
    met = (
        worst.connections >= GOAL_CONNECTIONS
        and worst.peak_delta_mb < GOAL_MB
        and all(r.tracebacks == 0 and r.serves_after for r in results)
    )
    return {
        "met": met,
        "worst_attack": worst.attack,
        "worst_peak_mb": worst.peak_delta_mb,
        "connections": worst.connections,
        "per_1000_connections_mb": round(scaled, 1),
        "limit_mb": GOAL_MB,
    }


def describe_goal(verdict: dict[str, Any]) -> str:
    line = (
        f"Goal ({GOAL_CONNECTIONS:,} unauthenticated connections under {GOAL_MB:.0f} MB in all, "
        f"no tracebacks, still serving): {'MET' if verdict['met'] else 'NOT MET'} - worst "
        f"{verdict['worst_attack']} +{verdict['worst_peak_mb']} MB at peak with "
        f"{verdict['connections']} connections ({verdict['per_1000_connections_mb']} MB per 1,000)"
    )
    if verdict["connections"] < GOAL_CONNECTIONS:
        line += f"; run with --connections {GOAL_CONNECTIONS} for the verdict"
    return line


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "stagecast": source_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def write_json(
    results: list[AttackResult], args: argparse.Namespace, verdict: dict[str, Any]
) -> None:
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            **asdict(r),
            "peak_delta_mb": r.peak_delta_mb,
            "held_delta_mb": r.held_delta_mb,
            "kib_per_connection": r.kib_per_connection,
        }
        for r in results
    ]
    document = {
        "benchmark": "rtmp_memory",
        "machine": machine(),  # load_average here is the one after the run
        "settings": vars(args),
        "results": rows,
        "goal": verdict,
    }
    RESULTS_FILE.write_text(json.dumps(document, indent=2) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="RTMP memory under hostile connections")
    parser.add_argument("--connections", type=int, default=GOAL_CONNECTIONS)
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="comma separated")
    parser.add_argument("--batch", type=int, default=100, help="handshakes in flight at once")
    parser.add_argument(
        "--fill", type=int, default=30 * 1024, help="under-the-cap: bytes of the open message"
    )
    parser.add_argument(
        "--budget",
        type=int,
        default=2 * OLD_MESSAGE_LIMIT - 2 * 65536,
        help="partial-messages: bytes sent per connection at most",
    )
    parser.add_argument(
        "--flood",
        type=int,
        default=4 * 1024 * 1024,
        help="publish-then-flood, pings-unread: bytes sent per connection at most",
    )
    parser.add_argument("--hold", type=float, default=3.0, help="seconds the held RSS is taken")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after the last send")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds an attack may take")
    parser.add_argument(
        "--server-env", action="append", default=[], help="STAGECAST_NAME=VALUE (repeatable)"
    )
    args = parser.parse_args(argv)
    args.attacks = [a for a in args.attacks.split(",") if a]
    unknown = [a for a in args.attacks if a not in ATTACKS]
    if unknown:
        parser.error(f"unknown attacks {unknown}; choose from {list(ATTACKS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    info = machine()
    print(
        f"cores: {info['cores']} (usable {info['usable_cores']}); python {info['python']}; "
        f"load average before {info['load_average']}\n"
        f"stagecast source: {info['stagecast']}\n"
        f"{args.connections} connections from 127.0.0.1 per attack, a fresh server each\n",
        flush=True,
    )
    results = []
    for attack in args.attacks:
        print(f"{attack} ...", flush=True)
        result = run_attack(attack, args)
        print(
            f"  handshaken {result.handshaken}, held {result.held}, closed {result.closed}; "
            f"sent {result.sent_mb} MB in {result.send_seconds} s; peak "
            f"{result.peak_delta_mb:+.1f} MB; errors {result.errors or 'none'}",
            flush=True,
        )
        results.append(result)
    verdict = goal(results)
    print("\n" + table(results) + "\n")
    print(describe_goal(verdict))
    write_json(results, args, verdict)
    print(f"\nload average after: {[round(x, 2) for x in os.getloadavg()]}")
    print(f"JSON: {RESULTS_FILE.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
