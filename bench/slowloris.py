"""Slow clients: how long `stagecast serve` holds slowloris connections, and /healthz meanwhile.

What it measures (issue 13)
    `--connections` (200) connections from `--source` (127.0.0.2: another client on loopback,
    not the trusted proxy 127.0.0.1), each doing one of:

    headers   `GET /healthz` whose headers never end: one more byte every second
    body      `POST /api/v1/auth/login` with `Content-Length: 1000`, half the body, then nothing

    and, for each, how long the server held it: from the connection opening to the server
    closing it (end of file or reset), or `--hold` (60) seconds if it never does. While they are
    held, a probe asks `GET /healthz` every 100 ms on a new connection from 127.0.0.1 and times
    each answer; a first probe window with no slow clients gives the baseline.

How to read the table
    held p50/max  seconds each connection was held (the bound: `HTTP_HEADER_TIMEOUT_SECONDS`
                  or `HTTP_BODY_TIMEOUT_SECONDS`, 10 and 20 by default)
    cut           connections the server closed before `--hold` (of those opened)
    answered      what the slow clients got back (408 expected)
    healthz       probes answered 200 / sent; p50, p99 and max latency in ms

    Goal: every slow connection cut within its bound (+1 s), every probe answered.

Usage
    .venv/bin/python bench/slowloris.py [--connections 200] [--hold 60] [--source 127.0.0.2]
        [--server-env STAGECAST_NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from serving import clean_env, free_port, launched, stagecast_command

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "slowloris.json"
PROBE_EVERY = 0.1
BODY_LENGTH = 1000


@dataclass
class Probes:
    sent: int = 0
    answered: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms) or [float("nan")]
        return {
            "sent": self.sent,
            "answered": self.answered,
            "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
            "max_ms": round(ordered[-1], 2),
        }


@dataclass
class Case:
    kind: str
    connections: int
    bound_seconds: float | None
    held_seconds: list[float] = field(default_factory=list)
    cut: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    probes: dict[str, Any] = field(default_factory=dict)


async def probe_healthz(port: int, stop: asyncio.Event, probes: Probes) -> None:
    """GET /healthz every PROBE_EVERY seconds on a fresh connection until `stop`."""
    request = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    while not stop.is_set():
        probes.sent += 1
        started = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            if answer.startswith(b"HTTP/1.1 200"):
                probes.answered += 1
                probes.latencies_ms.append((time.perf_counter() - started) * 1000)
        except (OSError, TimeoutError):
            pass
        await asyncio.sleep(PROBE_EVERY)


async def slow_client(port: int, source: str, kind: str, hold: float) -> tuple[float, str]:
    """One slow client; how long the server held it and what it answered."""
    opened = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    received = b""
    try:
        if kind == "headers":
            trickle = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Slow: "
            index = 0
            while time.monotonic() - opened < hold:
                byte = trickle[index] if index < len(trickle) else ord("z")
                writer.write(bytes([byte]))
                await writer.drain()
                index += 1
                try:
                    chunk = await asyncio.wait_for(reader.read(4096), 1)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                received += chunk
        else:
            writer.write(
                b"POST /api/v1/auth/login HTTP/1.1\r\nHost: bench\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {BODY_LENGTH}\r\n\r\n".encode()
                + b"{"
                + b" " * (BODY_LENGTH // 2)
            )
            await writer.drain()
            remaining = hold - (time.monotonic() - opened)
            with_timeout = asyncio.wait_for(reader.read(), max(remaining, 0.1))
            try:
                received = await with_timeout
            except TimeoutError:
                return hold, "held"
    except ConnectionError:
        pass
    finally:
        writer.close()
    held = time.monotonic() - opened
    if held >= hold:
        return hold, "held"
    status = received.split(b" ", 2)[1].decode() if received.startswith(b"HTTP/") else "closed"
    return held, status


async def run_case(case: Case, port: int, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    probes = Probes()
    probe = asyncio.create_task(probe_healthz(port, stop, probes))
    if case.connections:
        results = await asyncio.gather(
            *(slow_client(port, args.source, case.kind, args.hold) for _ in range(case.connections))
        )
        for held, answer in results:
            case.held_seconds.append(round(held, 3))
            case.answers[answer] = case.answers.get(answer, 0) + 1
            case.cut += held < args.hold
    else:
        await asyncio.sleep(args.baseline)
    stop.set()
    await probe
    case.probes = probes.summary()


def print_table(cases: list[Case]) -> None:
    print(
        f"\n{'case':<10}{'conns':>6}{'bound s':>9}{'held p50':>10}{'held max':>10}{'cut':>6}"
        f"  {'answered':<16}{'healthz':>10}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}"
    )
    print("-" * 109)
    for case in cases:
        held = case.held_seconds or [float("nan")]
        answers = ",".join(f"{k}x{v}" for k, v in sorted(case.answers.items())) or "-"
        probes = case.probes
        print(
            f"{case.kind:<10}{case.connections:>6}"
            f"{case.bound_seconds if case.bound_seconds is not None else '-':>9}"
            f"{statistics.median(held):>10.2f}{max(held):>10.2f}{case.cut:>6}  {answers:<16}"
            f"{probes['answered']:>5}/{probes['sent']:<4}{probes['p50_ms']:>8}"
            f"{probes['p99_ms']:>8}{probes['max_ms']:>8}"
        )


def goal(cases: list[Case]) -> tuple[bool, str]:
    for case in cases:
        if case.probes["answered"] != case.probes["sent"]:
            return (
                False,
                f"{case.kind}: {case.probes['sent'] - case.probes['answered']} probes failed",
            )
        bounded = case.bound_seconds is not None and case.connections
        if bounded and (
            case.cut != case.connections or max(case.held_seconds) > case.bound_seconds + 1
        ):
            return False, f"{case.kind}: held up to {max(case.held_seconds)} s"
    return True, "every slow connection cut within its bound, every probe answered"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Slowloris connections against stagecast serve")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--hold", type=float, default=60, help="give up on a connection after")
    parser.add_argument("--baseline", type=float, default=5, help="seconds of probes alone")
    parser.add_argument("--source", default="127.0.0.2", help="loopback address to attack from")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.server_env)
    print(
        f"cores: {os.cpu_count()} (usable {len(os.sched_getaffinity(0))}); python "
        f"{sys.version.split()[0]}; load average before {[round(x, 2) for x in os.getloadavg()]}"
    )
    with tempfile.TemporaryDirectory(prefix="slowloris-") as work:
        work_dir = Path(work)
        port = free_port()
        env = clean_env(
            STAGECAST_DATA_DIR=str(work_dir / "var"),
            STAGECAST_RTMP_PORT="0",
            STAGECAST_LOG_LEVEL="WARNING",
            STAGECAST_RATE_LIMIT_ENABLED="false",
            **extra,
        )
        header_bound = float(env.get("STAGECAST_HTTP_HEADER_TIMEOUT_SECONDS", 10))
        body_bound = float(env.get("STAGECAST_HTTP_BODY_TIMEOUT_SECONDS", 20))
        cases = [
            Case("baseline", 0, None),
            Case("headers", args.connections, header_bound),
            Case("body", args.connections, body_bound),
        ]
        with launched(
            stagecast_command(port),
            env=env,
            cwd=work_dir,
            log=work_dir / "serve.log",
            ready_url=f"http://127.0.0.1:{port}/readyz",
        ):
            for case in cases:
                asyncio.run(run_case(case, port, args))
    print_table(cases)
    met, why = goal(cases)
    print(
        f"\nGoal (slow connections cut within their bound, /healthz answering): "
        f"{'MET' if met else 'NOT MET'} - {why}"
    )
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "settings": {k: v for k, v in env.items() if k.startswith("STAGECAST_")},
        "cases": [asdict(case) for case in cases],
        "goal_met": met,
    }
    RESULTS_FILE.write_text(json.dumps(document, indent=2) + "\n")
    print(f"JSON: {RESULTS_FILE.relative_to(BENCH_DIR.parent)}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
