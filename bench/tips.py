"""Tips per second through the HTTP API on PostgreSQL, beside pgbench's TPC-B-like script.

What it measures (issue 6)
    `POST /api/v1/streams/{id}/tips` from `--clients` (8) concurrent clients, closed loop (each
    sends its next tip when the answer to the last one arrives), for `--duration` seconds after
    `--warmup` seconds. Every tip is 1-10 tokens from a random viewer's wallet to a random live
    stream, so that with `--viewers` (200) wallets two tips in flight rarely want the same
    wallet's row lock; the `--creators` (20) creators' earnings accounts, their streams' rows and
    the one platform revenue account are shared, as they are in production.

    Each tip is one database transaction: the wallet, the creator's earnings and the platform
    revenue accounts locked (`SELECT ... FOR UPDATE`, ordered by key), a ledger transaction with
    2-3 entries and a contribution inserted, the stream's total updated. Beside it, in the same
    run on the same PostgreSQL server, `pgbench`'s built-in TPC-B-like script (`pgbench -i -s 10`
    into its own database, then `pgbench -c <clients> -j 2 -T <duration> -M prepared`): three
    row updates, a select and an insert in one transaction, i.e. the physical ceiling of a
    transaction of this shape on this machine.

    The database is a fresh `stagecast_bench` made by `stagecast db upgrade`. Users sign up
    through the API (`POST /api/v1/auth/register`, Argon2 at its cheapest for the bench server),
    creators make their channel (`POST /api/v1/channels`), viewers fund their wallet through the
    sandbox payment provider (`POST /api/v1/wallet/buy` 10,000 tokens, then
    `POST /api/v1/wallet/sandbox/checkout/{id}`), so every wallet's balance is a real purchase
    in the ledger. Nothing in the API puts a stream live without media, so each creator's live
    stream is one row inserted into `streams`.

    The clients are one forked process of asyncio (uvloop) tasks, each on a keep-alive
    connection, writing HTTP/1.1 by hand: a few tens of microseconds of client CPU a tip, so
    that the server, not the client, is measured. Unlike wrk, which abandons the requests in
    flight when its time is up, they finish every request they started, so the number of 201s
    they saw is exact and can be checked against the database.

    After the run, straight from the database: every account's balance equals the sum of its
    entries, no wallet or earnings account is negative, all accounts sum to zero, every
    transaction's entries sum to zero (and there are at least two), every tip moved exactly its
    tokens out of the sender's wallet and its tokens minus the fee into the creator's earnings,
    and the tip transactions, the `contributions` rows and the 201s seen are the same number
    (and their tokens the same as the streams' totals).

How to read the table
    tx/s         stagecast: tips answered 201 / measured seconds; pgbench: its `tps` (without
                 initial connection time)
    p50 / p99    latency in ms (client: request written to response read; pgbench: its
                 per-transaction log)
    server cpu   CPU time of the Stagecast server process / wall time (100% = one core)
    db cpu       the same for every `postgres` process on the machine
    load cpu     the load generator's (the client process; pgbench)
    irq cpu      the kernel's interrupt and softirq work (loopback packets, disk flushes),
                 which no process is charged for
    other cpu    machine CPU none of those used: well above 0 means something else ran
    errors       stagecast: answers other than 201 and failed requests; pgbench: failed
                 transactions

    Goal: tips/s at least 0.5x pgbench's tps, with zero invariant violations.

Usage
    .venv/bin/python bench/tips.py [--duration 20] [--warmup 3] [--clients 8]
        [--viewers 200] [--creators 20] [--skip-pgbench] [--idempotency-key]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
        [--server-env STAGECAST_NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Iterator
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop  # comes with uvicorn[standard]
from kit import (
    BENCH_DIR,
    OTHER_CPU_WARNING_PCT,
    CpuWindow,
    finish_profiler,
    machine,
    percentile,
    print_profile,
    start_profiler,
    write_json,
)
from pg import asyncpg_dsn, fresh_database
from serving import BENCH_DATABASE, Database, migrate, running_server, stagecast_env
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

import stagecast
from stagecast.db.base import Base, new_id, utcnow
from stagecast.db.engine import create_engine
from stagecast.models import import_all_models

PGBENCH_DATABASE = "stagecast_pgbench"
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
# Issue 14's goals: the authenticated read at least half of /healthz; tips at least half the
# read and a fifth of pgbench's TPC-B (PostgreSQL).
GOALS = {"read_vs_healthz": 0.5, "tips_vs_read": 0.5, "tips_vs_pgbench": 0.2}

PGBENCH_SCALE = 10
PGBENCH_THREADS = 2
WALLET_PACKAGE = 10_000  # tokens each viewer buys: ~1,800 tips of 1-10, far more than a run
TIP_TOKENS = (1, 10)
REQUEST_TIMEOUT = 30.0
SETUP_CONCURRENCY = 8
RANDOM_SEED = 6

SERVER_SETTINGS = [
    # Argon2 at its cheapest: signing up 200 viewers must not take minutes.
    "STAGECAST_PASSWORD_TIME_COST=1",
    "STAGECAST_PASSWORD_MEMORY_KIB=8192",
    "STAGECAST_PASSWORD_PARALLELISM=1",
    "STAGECAST_MONEY_JOBS_ENABLED=false",  # no renewals or payout retries beside the load
    "STAGECAST_ACCESS_TOKEN_TTL=PT60M",  # the longest allowed: tokens outlive the run
]


# --- the population: viewers with funded wallets, creators with a live stream --------------


@dataclass(slots=True)
class Population:
    viewer_tokens: list[str]
    stream_ids: list[str]
    funded_tokens: int
    seconds: float

    def counts(self) -> dict[str, int]:
        return {
            "viewers": len(self.viewer_tokens),
            "creators": len(self.stream_ids),
            "live_streams": len(self.stream_ids),
            "tokens_per_wallet": self.funded_tokens,
        }


class SetupFailed(RuntimeError):
    pass


def _expect(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        method, path = response.request.method, response.request.url.path
        raise SetupFailed(f"{method} {path}: {response.status_code} {response.text[:300]}")
    return dict(response.json())


async def _register(http: httpx.AsyncClient, name: str, password: str) -> str:
    body = {"username": name, "email": f"{name}@example.com", "password": password}
    return str(_expect(await http.post("/api/v1/auth/register", json=body), 201)["access_token"])


async def _viewer(http: httpx.AsyncClient, index: int, password: str) -> str:
    """A new user whose wallet holds WALLET_PACKAGE tokens, bought through the sandbox."""
    token = await _register(http, f"tipper_{index}", password)
    auth = {"Authorization": f"Bearer {token}"}
    bought = _expect(
        await http.post("/api/v1/wallet/buy", json={"tokens": WALLET_PACKAGE}, headers=auth), 201
    )
    paid = _expect(
        await http.post(f"/api/v1/wallet/sandbox/checkout/{bought['purchase_id']}", headers=auth),
        200,
    )
    if paid["status"] != "completed":
        raise SetupFailed(f"sandbox checkout left the purchase {paid['status']}: {paid}")
    return token


async def _creator(http: httpx.AsyncClient, index: int, password: str) -> str:
    """A new user with a channel: the channel's id."""
    token = await _register(http, f"creator_{index}", password)
    auth = {"Authorization": f"Bearer {token}"}
    channel = _expect(
        await http.post("/api/v1/channels", json={"slug": f"creator-{index}"}, headers=auth), 201
    )
    return str(channel["id"])


async def _bounded(limit: asyncio.Semaphore, work: Awaitable[str]) -> str:
    async with limit:
        return await work


async def _go_live(database_url: str, channel_ids: list[str]) -> list[str]:
    """One live stream per channel, straight into `streams` (no API does it without media)."""
    import_all_models()
    streams = Base.metadata.tables["streams"]
    now = utcnow()
    rows = [
        {"id": new_id(), "channel_id": uuid.UUID(channel_id), "title": f"Tip jar {n}",
         "language": "en", "status": "live", "started_at": now, "viewers_sampled_at": now}
        for n, channel_id in enumerate(channel_ids)
    ]  # fmt: skip
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(streams), rows)
    finally:
        await engine.dispose()
    return [str(row["id"]) for row in rows]


async def populate(base: str, database_url: str, args: argparse.Namespace) -> Population:
    started = time.monotonic()
    password = secrets.token_urlsafe(18)
    limit = asyncio.Semaphore(SETUP_CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT) as http:
        channel_ids = await asyncio.gather(
            *(_bounded(limit, _creator(http, i, password)) for i in range(args.creators))
        )
        viewer_tokens = await asyncio.gather(
            *(_bounded(limit, _viewer(http, i, password)) for i in range(args.viewers))
        )
    stream_ids = await _go_live(database_url, list(channel_ids))
    return Population(
        viewer_tokens=list(viewer_tokens),
        stream_ids=stream_ids,
        funded_tokens=WALLET_PACKAGE,
        seconds=round(time.monotonic() - started, 1),
    )


def check_tip(base: str, population: Population) -> int:
    """One tip first (a benchmark of error answers would measure nothing): its tokens."""
    response = httpx.post(
        f"{base}/api/v1/streams/{population.stream_ids[0]}/tips",
        json={"tokens": 1, "message": "gg"},
        headers={"Authorization": f"Bearer {population.viewer_tokens[0]}"},
        timeout=REQUEST_TIMEOUT,
    )
    return int(_expect(response, 201)["tokens"])


# --- the load: a forked process of lean HTTP/1.1 clients ------------------------------------


@dataclass(frozen=True, slots=True)
class LoadPlan:
    host: str
    port: int
    viewer_tokens: tuple[str, ...]
    stream_ids: tuple[str, ...]
    clients: int
    seconds: float
    seed: int
    idempotency_key: bool
    # "tip"; or a floor: "healthz" (no auth, no database), "balance" (auth + one read)
    request: str = "tip"


@dataclass(slots=True)
class LoadOutcome:
    seconds: float  # first request written to last answer read
    statuses: dict[int, int]
    failures: dict[str, int]  # requests without an answer, by exception
    tipped_tokens: int  # the tokens of the tips answered 201
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def tips(self) -> int:
        return self.statuses.get(201, 0)

    @property
    def answered_ok(self) -> int:
        return self.statuses.get(201, 0) + self.statuses.get(200, 0)

    @property
    def error_count(self) -> int:
        failed = sum(n for s, n in self.statuses.items() if s not in {200, 201})
        return failed + sum(self.failures.values())


@dataclass(slots=True)
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    tipped_tokens: int = 0
    latencies: list[float] = field(default_factory=list)


class ProtocolError(Exception):
    pass


CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the server closes the connection) of one response, body skipped."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    length = CONTENT_LENGTH.search(head)
    if not head.startswith(b"http/1.1 ") or length is None:
        raise ProtocolError(head[:200].decode(errors="replace"))
    await reader.readexactly(int(length[1]))
    return int(head[9:12]), b"\r\nconnection: close" in head


def _request(plan: LoadPlan, token: str, stream_id: str, tokens: int) -> bytes:
    host = f"Host: {plan.host}:{plan.port}\r\n"
    if plan.request == "healthz":
        return f"GET /healthz HTTP/1.1\r\n{host}\r\n".encode()
    if plan.request == "balance":
        auth = f"Authorization: Bearer {token}\r\n"
        return f"GET /api/v1/wallet/balance HTTP/1.1\r\n{host}{auth}\r\n".encode()
    body = b'{"tokens":%d,"message":"gg"}' % tokens
    key = f"Idempotency-Key: {uuid.uuid4().hex}\r\n" if plan.idempotency_key else ""
    head = (
        f"POST /api/v1/streams/{stream_id}/tips HTTP/1.1\r\nHost: {plan.host}:{plan.port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n{key}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(
    plan: LoadPlan,
    index: int,
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    deadline: float,
    tally: Tally,
) -> None:
    """Tip until the deadline, one request at a time; the last one is always answered."""
    rng = random.Random(f"{plan.seed}:{index}")  # noqa: S311 - load, not secrets
    reader, writer = connection
    try:
        while time.monotonic() < deadline:
            tokens = rng.randint(*TIP_TOKENS)
            token, stream_id = rng.choice(plan.viewer_tokens), rng.choice(plan.stream_ids)
            request = _request(plan, token, stream_id, tokens)
            started = time.perf_counter()
            try:
                writer.write(request)
                await writer.drain()
                status, closing = await asyncio.wait_for(_read_response(reader), REQUEST_TIMEOUT)
            except (OSError, TimeoutError, ProtocolError, asyncio.IncompleteReadError) as error:
                tally.failures[type(error).__name__] += 1
                closing = True
            else:
                tally.latencies.append(time.perf_counter() - started)
                tally.statuses[status] += 1
                if status == 201 and plan.request == "tip":
                    tally.tipped_tokens += tokens
            if closing:
                writer.close()
                reader, writer = await asyncio.open_connection(plan.host, plan.port)
    finally:
        writer.close()


def _percentile(ordered: list[float], fraction: float) -> float:
    """kit.percentile of latencies in seconds, in ms (0 when nothing was answered)."""
    return round(1000 * percentile(ordered, fraction), 2) if ordered else 0.0


async def _drive(plan: LoadPlan) -> LoadOutcome:
    tally = Tally()
    connections = [await asyncio.open_connection(plan.host, plan.port) for _ in range(plan.clients)]
    started = time.monotonic()
    deadline = started + plan.seconds
    await asyncio.gather(*(_client(plan, i, c, deadline, tally) for i, c in enumerate(connections)))
    seconds = time.monotonic() - started
    ordered = sorted(tally.latencies)
    return LoadOutcome(
        seconds=round(seconds, 3),
        statuses=dict(sorted(tally.statuses.items())),
        failures=dict(tally.failures),
        tipped_tokens=tally.tipped_tokens,
        p50_ms=_percentile(ordered, 0.50),
        p90_ms=_percentile(ordered, 0.90),
        p99_ms=_percentile(ordered, 0.99),
        max_ms=round(1000 * ordered[-1], 2) if ordered else 0.0,
    )


def _load_process(plan: LoadPlan, results: Connection) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        results.send(asdict(runner.run(_drive(plan))))
    results.close()


def run_load(plan: LoadPlan) -> LoadOutcome:
    """The clients in a child process: their CPU is theirs, not the benchmark's (and counts,
    once the child is reaped, as the load generator's)."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_load_process, args=(plan, sender), name="tip-clients")
    process.start()
    sender.close()
    try:
        outcome = receiver.recv()
    except EOFError:
        raise RuntimeError(f"the client process failed ({process.exitcode})") from None
    finally:
        process.join()
    return LoadOutcome(**outcome)


@dataclass(slots=True)
class Row:
    """One line of the table: a measured run of Stagecast's tips or of pgbench."""

    name: str
    tx_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_pct: dict[str, float]
    details: dict[str, Any]


def load_plan(
    base: str, population: Population, args: argparse.Namespace, *, seconds: float
) -> LoadPlan:
    url = httpx.URL(base)
    return LoadPlan(
        host=str(url.host),
        port=int(url.port or 80),
        viewer_tokens=tuple(population.viewer_tokens),
        stream_ids=tuple(population.stream_ids),
        clients=args.clients,
        seconds=seconds,
        seed=RANDOM_SEED,
        idempotency_key=args.idempotency_key,
    )


def measure_tips(
    base: str, pid: int, population: Population, args: argparse.Namespace
) -> tuple[Row, list[LoadOutcome]]:
    """Warm up, then the measured run: the row and both runs' outcomes (the 201s of both
    are in the database)."""
    plan = load_plan(base, population, args, seconds=args.warmup)
    runs = []
    if args.warmup > 0:
        runs.append(run_load(plan))
    plan = replace(plan, seconds=args.duration, seed=RANDOM_SEED + 1)
    window = CpuWindow(pid)
    measured = run_load(plan)
    cpu = window.shares()
    runs.append(measured)
    row = Row(
        name="stagecast tips",
        tx_per_s=round(measured.tips / measured.seconds, 1),
        p50_ms=measured.p50_ms,
        p99_ms=measured.p99_ms,
        errors=measured.error_count,
        cpu_pct=cpu,
        details=asdict(measured),
    )
    return row, runs


FLOORS = {"healthz": "stagecast healthz", "balance": "stagecast balance"}
PROFILE_SECONDS = 10


def profile_tips(
    base: str, pid: int, population: Population, args: argparse.Namespace
) -> dict[str, Any]:
    """One more tips run with py-spy recording the server (not part of the figures: the
    sampler slows it down); its 201s are counted in the invariants like the others."""
    plan = replace(load_plan(base, population, args, seconds=PROFILE_SECONDS), seed=RANDOM_SEED + 3)
    profiler = start_profiler(pid, PROFILE_SECONDS + 2)
    measured = run_load(plan)
    profile = finish_profiler(*profiler) if profiler else {"error": "py-spy not found"}
    return {
        "tips": measured.tips,
        "tokens": measured.tipped_tokens,
        "tips_per_s": round(measured.tips / measured.seconds, 1),
        **profile,
    }


def print_tip_profile(kind: str, profile: dict[str, Any]) -> None:
    print_profile(profile, during=f"tips on {kind} ({profile['tips_per_s']} tips/s sampled)")


def measure_floors(
    base: str, pid: int, population: Population, args: argparse.Namespace
) -> list[Row]:
    """The same clients on requests every tip costs at least: `GET /healthz` (HTTP alone) and
    `GET /api/v1/wallet/balance` (HTTP, the access token and the session checked, one read)."""
    rows = []
    for request, name in FLOORS.items():
        plan = replace(
            load_plan(base, population, args, seconds=args.floor_duration),
            seed=RANDOM_SEED + 2,
            idempotency_key=False,
            request=request,
        )
        window = CpuWindow(pid)
        measured = run_load(plan)
        rows.append(
            Row(
                name=name,
                tx_per_s=round(measured.answered_ok / measured.seconds, 1),
                p50_ms=measured.p50_ms,
                p99_ms=measured.p99_ms,
                errors=measured.error_count,
                cpu_pct=window.shares(),
                details=asdict(measured),
            )
        )
    return rows


# --- invariants, from the database ----------------------------------------------------------

SHOWN_PER_CHECK = 10

# Each query returns the rows that break the rule; none is what a sound ledger gives.
INVARIANT_QUERIES: dict[str, str] = {
    "balance differs from the sum of its entries": """
        SELECT a.key, a.balance, COALESCE(SUM(e.amount), 0)::bigint AS entries
        FROM ledger_accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id
        GROUP BY a.id HAVING a.balance <> COALESCE(SUM(e.amount), 0)""",
    "wallet or earnings account negative": """
        SELECT key, balance FROM ledger_accounts
        WHERE balance < 0 AND (NOT allow_negative OR kind IN ('wallet', 'earnings'))""",
    "entry left a wallet or earnings account negative": """
        SELECT a.key, e.id, e.balance_after FROM ledger_entries e
        JOIN ledger_accounts a ON a.id = e.account_id
        WHERE e.balance_after < 0 AND (NOT a.allow_negative OR a.kind IN ('wallet', 'earnings'))""",
    "accounts do not sum to zero": """
        SELECT SUM(balance)::bigint AS total FROM ledger_accounts HAVING SUM(balance) <> 0""",
    "transaction's entries do not sum to zero (or fewer than two)": """
        SELECT t.id, t.kind, COALESCE(SUM(e.amount), 0)::bigint AS total, COUNT(e.id) AS entries
        FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.transaction_id = t.id
        GROUP BY t.id HAVING COALESCE(SUM(e.amount), 0) <> 0 OR COUNT(e.id) < 2""",
    "tip did not move its tokens from the sender's wallet to the creator's earnings": """
        SELECT c.id, c.tokens, c.fee_tokens FROM contributions c
        JOIN ledger_transactions t ON t.id = c.transaction_id
        JOIN ledger_entries e ON e.transaction_id = t.id
        JOIN ledger_accounts a ON a.id = e.account_id
        WHERE c.kind = 'tip'
        GROUP BY c.id, t.kind HAVING t.kind <> 'tip'
          OR COALESCE(SUM(e.amount) FILTER (WHERE a.key = 'wallet:' || c.from_user_id), 0)
             <> -c.tokens
          OR COALESCE(SUM(e.amount) FILTER (WHERE a.key = 'earnings:' || c.to_user_id), 0)
             <> c.tokens - c.fee_tokens""",
}

COUNT_QUERIES: dict[str, str] = {
    "tip transactions": "SELECT COUNT(*) FROM ledger_transactions WHERE kind = 'tip'",
    "tip contributions": "SELECT COUNT(*) FROM contributions WHERE kind = 'tip'",
    "tokens in tip contributions": (
        "SELECT COALESCE(SUM(tokens), 0) FROM contributions WHERE kind = 'tip'"
    ),
    "tokens in stream totals": "SELECT COALESCE(SUM(total_tokens_received), 0) FROM streams",
    "accounts": "SELECT COUNT(*) FROM ledger_accounts",
    "entries": "SELECT COUNT(*) FROM ledger_entries",
}


# Needs the account key built from the UUID's text, which SQLite stores without dashes.
POSTGRES_ONLY_RULES = frozenset(
    {"tip did not move its tokens from the sender's wallet to the creator's earnings"}
)


async def _rows(database_url: str, queries: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Each query's rows, through asyncpg on PostgreSQL or SQLAlchemy on SQLite."""
    if database_url.startswith("postgresql"):
        connection = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            return {
                name: [dict(r) for r in await connection.fetch(q)] for name, q in queries.items()
            }
        finally:
            await connection.close()
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            found = {}
            for name, query in queries.items():
                result = await connection.execute(text(query.replace("::bigint", "")))
                found[name] = [dict(r._mapping) for r in result]
            return found
    finally:
        await engine.dispose()


async def check_invariants(database_url: str, tips_seen: int, tokens_seen: int) -> dict[str, Any]:
    """Every rule over the whole ledger; `violations` lists what broke one."""
    sqlite = database_url.startswith("sqlite")
    rules = {
        rule: query
        for rule, query in INVARIANT_QUERIES.items()
        if not (sqlite and rule in POSTGRES_ONLY_RULES)
    }
    violations: list[str] = []
    for rule, rows in (await _rows(database_url, rules)).items():
        violations += [f"{rule}: {r}" for r in rows[:SHOWN_PER_CHECK]]
        if len(rows) > SHOWN_PER_CHECK:
            violations.append(f"{rule}: ... {len(rows) - SHOWN_PER_CHECK} more")
    counts = {
        name: int(next(iter(rows[0].values())))
        for name, rows in (await _rows(database_url, COUNT_QUERIES)).items()
    }
    counts["201s seen"] = tips_seen
    counts["tokens in 201s seen"] = tokens_seen
    for what, names in {
        "tips": ("201s seen", "tip transactions", "tip contributions"),
        "tipped tokens": ("tokens in 201s seen", "tokens in tip contributions",
                          "tokens in stream totals"),
    }.items():  # fmt: skip
        if len({counts[n] for n in names}) > 1:
            violations.append(f"{what} disagree: " + ", ".join(f"{n} {counts[n]}" for n in names))
    return {"violations": violations, "counts": counts}


# --- pgbench --------------------------------------------------------------------------------


def pgbench_base(pgbench: str, database_url: str) -> tuple[list[str], dict[str, str]]:
    """pgbench's command line up to its options, and its environment, for a database."""
    url = make_url(database_url)
    command = [pgbench, "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    if url.username:
        command += ["-U", url.username]
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return command, env


def _run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(  # noqa: S603 - our own fixed command line
        command, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout + done.stderr


def _log_latencies(prefix: Path) -> list[float]:
    """Per-transaction latencies (seconds) from pgbench's `-l` logs: the third field, in µs."""
    latencies = []
    for log in prefix.parent.glob(prefix.name + ".*"):
        for line in log.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                latencies.append(int(fields[2]) / 1e6)
    return latencies


def measure_pgbench(
    pgbench: str, database_url: str, args: argparse.Namespace, work_dir: Path
) -> Row:
    """`pgbench -i -s 10`, a warm-up, then the measured run of the TPC-B-like script."""
    base, env = pgbench_base(pgbench, database_url)
    database = str(make_url(database_url).database)
    _run([*base, "-i", "-s", str(PGBENCH_SCALE), "-q", database], env)
    threads = str(min(PGBENCH_THREADS, args.clients))
    run = [*base, "-c", str(args.clients), "-j", threads, "-M", "prepared"]
    if args.warmup > 0:
        _run([*run, "-T", str(args.warmup), database], env)
    checkpoint(database_url)
    prefix = work_dir / "pgbench_log"
    window = CpuWindow(None)
    out = _run([*run, "-T", str(args.duration), "-l", f"--log-prefix={prefix}", database], env)
    cpu = window.shares()
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    done = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if tps is None or done is None:
        raise RuntimeError(f"pgbench printed no tps:\n{out}")
    ordered = sorted(_log_latencies(prefix))
    return Row(
        name="pgbench tpc-b",
        tx_per_s=round(float(tps[1]), 1),
        p50_ms=_percentile(ordered, 0.50),
        p99_ms=_percentile(ordered, 0.99),
        errors=int(failed[1]) if failed else 0,
        cpu_pct=cpu,
        details={
            "scale": PGBENCH_SCALE,
            "clients": args.clients,
            "threads": int(threads),
            "transactions": int(done[1]),
            "p90_ms": _percentile(ordered, 0.90),
            "max_ms": round(1000 * ordered[-1], 2) if ordered else 0.0,
            "output": out.strip().splitlines()[-12:],
        },
    )


def checkpoint(database_url: str) -> None:
    """Start the measured run with no checkpoint's writes pending from the setup."""

    async def run() -> None:
        connection = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            await connection.execute("CHECKPOINT")
        finally:
            await connection.close()

    asyncio.run(run())


# --- output ---------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    header = (
        f"{'run':<18} {'tx/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'server cpu':>10} "
        f"{'db cpu':>7} {'load cpu':>8} {'irq cpu':>7} {'other cpu':>9} {'errors':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        server = "-" if r.name.startswith("pgbench") else f"{r.cpu_pct['server']:.0f}%"
        lines.append(
            f"{r.name:<18} {r.tx_per_s:>8.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {server:>10} "
            f"{r.cpu_pct['database']:>6.0f}% {r.cpu_pct['load_generator']:>7.0f}% "
            f"{r.cpu_pct['interrupts']:>6.0f}% "
            f"{r.cpu_pct['other']:>8.0f}% {r.errors:>6}"
        )
    return "\n".join(lines)


def _rate(rows: list[Row], name: str) -> float | None:
    found = [r.tx_per_s for r in rows if r.name.endswith(name)]
    return found[0] if found else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def goal(sides: dict[str, dict[str, Any]], pgbench: Row | None) -> dict[str, Any]:
    """The issue 14 ratios for each database, and whether they are met."""
    verdict: dict[str, Any] = {"required": GOALS, "databases": {}}
    pgbench_tps = pgbench.tx_per_s if pgbench else None
    for kind, side in sides.items():
        rows: list[Row] = [side["row"], *side["floors"]]
        healthz, read, tips = (_rate(rows, n) for n in ("healthz", "balance", "tips"))
        ratios = {
            "read_vs_healthz": _ratio(read, healthz),
            "tips_vs_read": _ratio(tips, read),
            "tips_vs_pgbench": _ratio(tips, pgbench_tps),
        }
        violations = len(side["invariants"]["violations"])
        met = {
            name: (value >= GOALS[name]) if value is not None else None
            for name, value in ratios.items()
        }
        if kind != "postgresql":  # the pgbench goal is PostgreSQL's; SQLite is shown beside it
            met.pop("tips_vs_pgbench")
        verdict["databases"][kind] = {
            "healthz_per_s": healthz, "read_per_s": read, "tips_per_s": tips,
            "pgbench_tps": pgbench_tps, **ratios, "violations": violations,
            "met": all(v is not False for v in met.values()) and not violations,
        }  # fmt: skip
    return verdict


def side_by_side(verdict: dict[str, Any]) -> str:
    """The figures and ratios of each database in one column each."""
    kinds = list(verdict["databases"])
    lines = [f"{'':<34}" + "".join(f"{k:>12}" for k in kinds)]

    def line(label: str, key: str, fmt: str) -> None:
        cells = []
        for kind in kinds:
            value = verdict["databases"][kind].get(key)
            cells.append(f"{'-' if value is None else format(value, fmt):>12}")
        lines.append(f"{label:<34}" + "".join(cells))

    line("GET /healthz req/s", "healthz_per_s", ".0f")
    line("GET /wallet/balance req/s", "read_per_s", ".0f")
    line("POST tips/s", "tips_per_s", ".0f")
    line("pgbench TPC-B tps", "pgbench_tps", ".0f")
    line(f"read / healthz   (goal >= {GOALS['read_vs_healthz']})", "read_vs_healthz", ".2f")
    line(f"tips / read      (goal >= {GOALS['tips_vs_read']})", "tips_vs_read", ".2f")
    line(f"tips / pgbench   (goal >= {GOALS['tips_vs_pgbench']})", "tips_vs_pgbench", ".2f")
    line("invariant violations", "violations", "d")
    met = [f"{kind}: {'MET' if verdict['databases'][kind]['met'] else 'NOT MET'}" for kind in kinds]
    lines.append("Goals (issue 14): " + ", ".join(met))
    return "\n".join(lines)


def describe_machine(pgbench: str | None, server_url: str) -> dict[str, Any]:
    async def database_server() -> dict[str, str]:
        connection = await asyncpg.connect(asyncpg_dsn(server_url))
        try:
            version = await connection.fetchval("SHOW server_version")
            rows = await connection.fetch(
                "SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])",
                ["fsync", "synchronous_commit", "shared_buffers", "max_connections"],
            )
        finally:
            await connection.close()
        return {"version": str(version), **{r["name"]: r["setting"] for r in rows}}

    version = _run([pgbench, "--version"], dict(os.environ)).strip() if pgbench else None
    return machine(pgbench=version, postgresql=asyncio.run(database_server()))


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Tips/s through the API beside pgbench's tps")
    parser.add_argument("--duration", type=int, default=20, help="measured seconds")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds (each side)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--viewers", type=int, default=200, help="funded wallets that tip")
    parser.add_argument("--creators", type=int, default=20, help="creators, one live stream each")
    parser.add_argument("--skip-pgbench", action="store_true", help="measure the tips only")
    parser.add_argument("--skip-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="profile the server during a further tips run (py-spy record) and count the "
        "database round trips of a tip",
    )
    parser.add_argument(
        "--skip-floors", action="store_true", help="no GET /healthz and GET balance rows"
    )
    parser.add_argument(
        "--floor-duration", type=int, default=10, help="measured seconds of each floor row"
    )
    parser.add_argument(
        "--idempotency-key", action="store_true", help="send a fresh Idempotency-Key with each tip"
    )
    parser.add_argument(
        "--postgres",
        default=DEFAULT_POSTGRES,
        help=f"the PostgreSQL server (default {DEFAULT_POSTGRES}); the bench makes and drops "
        f"its databases {BENCH_DATABASE} and {PGBENCH_DATABASE} there",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="STAGECAST_NAME=VALUE",
        help="one more server setting, applied last (repeatable)",
    )
    args = parser.parse_args(argv)
    if make_url(args.postgres).get_backend_name() != "postgresql":
        parser.error("--postgres must be postgresql+asyncpg://...")
    for setting in args.server_env:
        if not setting.startswith("STAGECAST_") or "=" not in setting:
            parser.error(f"--server-env takes STAGECAST_NAME=VALUE, not {setting!r}")
    if min(args.duration, args.clients, args.viewers, args.creators) < 1 or args.warmup < 0:
        parser.error("--duration, --clients, --viewers and --creators must be positive")
    if args.warmup + args.duration > 1800:
        parser.error("access tokens live 60 minutes: keep --warmup + --duration under 1800 s")
    return args


@contextlib.contextmanager
def bench_database(args: argparse.Namespace, kind: str) -> Iterator[Database]:
    """A fresh database of `kind`: `stagecast_bench` on the PostgreSQL server, or SQLite in
    the data directory."""
    if kind == "sqlite":
        yield Database(kind="sqlite", url=None)
        return
    with fresh_database(args.postgres, BENCH_DATABASE) as url:
        yield Database(kind="postgresql", url=url)


def run_stagecast(args: argparse.Namespace, work_dir: Path, kind: str) -> dict[str, Any]:
    """The tips side on a fresh database of `kind`: setup, load, floors, invariants."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with bench_database(args, kind) as database:
        database_url = database.resolved_url(work_dir)
        env = stagecast_env(work_dir, database, SERVER_SETTINGS + args.server_env)
        migrate(env, work_dir)
        with running_server(env, work_dir) as (base, pid):
            population = asyncio.run(populate(base, database_url, args))
            print(
                f"[{kind}] set up in {population.seconds:.1f} s through the API: {args.viewers} "
                f"viewers with {WALLET_PACKAGE:,} tokens each, {args.creators} creators with a "
                "live stream",
                flush=True,
            )
            checked_tokens = check_tip(base, population)
            if kind == "postgresql":
                checkpoint(database_url)
            print(f"  tips: {args.warmup} s warm-up + {args.duration} s ...", flush=True)
            row, runs = measure_tips(base, pid, population, args)
            floors = [] if args.skip_floors else measure_floors(base, pid, population, args)
            profile = profile_tips(base, pid, population, args) if args.py_spy else None
        invariants = asyncio.run(
            check_invariants(
                database_url,
                tips_seen=1 + sum(r.tips for r in runs) + (profile or {}).get("tips", 0),
                tokens_seen=checked_tokens
                + sum(r.tipped_tokens for r in runs)
                + (profile or {}).get("tokens", 0),
            )
        )
    prefix = "stagecast" if kind == "postgresql" else "sqlite"
    for measured in (row, *floors):
        measured.name = measured.name.replace("stagecast", prefix)
    return {
        "population": population.counts(),
        "row": row,
        "floors": floors,
        "invariants": invariants,
        "profile": profile,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pgbench = None if args.skip_pgbench else shutil.which("pgbench")
    if not args.skip_pgbench and pgbench is None:
        print("pgbench is not installed; install it with:\n  apt-get install -y postgresql-client")
        return 2
    info = describe_machine(pgbench, args.postgres)
    pg = info["postgresql"]
    print(
        f"cores: {info['cores']} (usable {info['usable_cores']}); python {info['python']}; "
        f"PostgreSQL {pg['version']} (fsync {pg['fsync']}, synchronous_commit "
        f"{pg['synchronous_commit']}); load average before {info['load_average']}\n"
        f"stagecast source: {info['stagecast']} ({Path(stagecast.__file__).parent})\n"
        f"{args.clients} clients, {args.warmup} s warm-up + {args.duration} s measured",
        flush=True,
    )
    kinds = ["postgresql"] + ([] if args.skip_sqlite else ["sqlite"])
    sides: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="stagecast-tips-") as tmp:
        work_dir = Path(tmp)
        for kind in kinds:
            sides[kind] = run_stagecast(args, work_dir / kind, kind)
        pgbench_row = None
        if pgbench is not None:
            print(f"  pgbench: -i -s {PGBENCH_SCALE}, {args.warmup} s warm-up + ...", flush=True)
            with fresh_database(args.postgres, PGBENCH_DATABASE) as url:
                pgbench_row = measure_pgbench(pgbench, url, args, work_dir)
    rows = [r for side in sides.values() for r in (side["row"], *side["floors"])]
    rows += [pgbench_row] if pgbench_row else []
    verdict = goal(sides, pgbench_row)
    print("\n" + table(rows) + "\n")
    for kind, side in sides.items():
        details = side["row"].details
        failures = details["failures"]
        violations: list[str] = side["invariants"]["violations"]
        print(
            f"[{kind}] answers by status: {details['statuses']}"
            + (f"; failed: {failures}" if failures else "")
            + f"; invariant violations: {len(violations)}"
        )
        for violation in violations:
            print(f"  {violation}")
        if side["profile"]:
            print_tip_profile(kind, side["profile"])
    print("\n" + side_by_side(verdict))
    busy = [r for r in rows if r.cpu_pct["other"] > OTHER_CPU_WARNING_PCT]
    if busy:
        print(
            "WARNING: other processes used up to "
            f"{max(r.cpu_pct['other'] for r in busy):.0f}% of a core while measuring "
            f"{', '.join(r.name for r in busy)}; the machine was not quiet. Run again."
        )
    document = {
        "benchmark": "tips",
        "machine": info,
        "settings": vars(args),
        "population": {kind: side["population"] for kind, side in sides.items()},
        "results": [asdict(r) for r in rows],
        "invariants": {kind: side["invariants"] for kind, side in sides.items()},
        "profiles": {kind: side["profile"] for kind, side in sides.items()},
        "goal": verdict,
    }
    path = write_json("tips", document)
    print(f"\nJSON: {path.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
