"""Browse and stream-page throughput: requests/s and p99 of the discovery API under load.

What it measures (issue 3)
    `GET /api/v1/browse` (the default: live streams, most watched first, 20 a page), the same
    filtered (`?category=gaming&sort=newest`) and `GET /api/v1/streams/{id}` (cycling over 100
    live streams), each beside the same server's `GET /healthz`, which does no database work
    and so is the ceiling of what the HTTP stack itself serves on this machine.

    The database is seeded with 10,000 users, each with a channel; 1,000 channels are live
    (one live stream each, 1-5 tags, Zipf-like viewer counts) and 3,000 have ended streams.
    Rows go in directly through SQLAlchemy bulk inserts (registering 10,000 users through the
    API would spend minutes in Argon2), after `stagecast db upgrade` has made the schema, so
    the schema is the migrations'. Search documents are written as the services would.

    `stagecast serve` then runs as a subprocess on a free port with its own temporary data
    directory: SQLite by default, or PostgreSQL with `--database-url`, in which case a fresh
    database `stagecast_bench` is made on that server (and dropped afterwards). Rate limits are
    off (they would cap the load) and logging is at WARNING (one line a request would dominate).

    The load comes from `wrk` (Debian's package): closed loop, `--connections` keep-alive
    connections over `--threads` threads, a 2 s warm-up and then `--duration` seconds per
    endpoint, one endpoint at a time. A Lua `done` hook reports the exact counts and latency
    percentiles.

How to read the table
    req/s        completed requests / measured seconds
    p50 / p99    latency percentiles in ms, as wrk measures them (request written to response
                 read, queueing in the server included)
    vs healthz   req/s as a fraction of /healthz's: the share of the HTTP ceiling left once the
                 endpoint's own work (queries, ORM, serialisation) is paid
    server cpu   CPU time of the server process / wall time (100% = one core busy)
    db cpu       the same for every `postgres` process on the machine (0 on SQLite, which
                 runs inside the server)
    other cpu    machine CPU that neither the server, PostgreSQL nor wrk used: anything
                 well above 0 means something else ran and the row is low (it warns at 20%)
    errors       non-2xx responses plus socket errors and timeouts; a row with errors is
                 not a valid measurement

    Goal: `/api/v1/browse` at least half of the `/healthz` rate, with no errors.

    wrk and the server share the machine's cores; compare the rows of one run with each other,
    not with runs on other machines. `--py-spy` samples the server during the default browse
    run and prints where it spent its time.

Usage
    apt-get install -y wrk
    .venv/bin/python bench/api_browse.py [--database-url URL] [--duration 10]
        [--connections 50] [--threads 2] [--warmup 2] [--py-spy]
        [--server-env STAGECAST_NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from kit import (
    BENCH_DIR,
    OTHER_CPU_WARNING_PCT,
    cpu_sample,
    cpu_shares,
    finish_profiler,
    machine,
    print_profile,
    start_profiler,
    write_json,
)
from serving import BENCH_DATABASE, Database, database_for, migrate, running_server, stagecast_env
from sqlalchemy import Table, insert, select, text

import stagecast
from stagecast.db.base import Base, new_id, utcnow
from stagecast.db.engine import create_engine
from stagecast.models import import_all_models

GOAL_RATIO = 0.5
GOAL_ENDPOINT = "browse"

CHANNELS = 10_000
LIVE_STREAMS = 1_000
CHANNELS_WITH_ENDED_STREAMS = 3_000
STREAM_PAGE_IDS = 100
RANDOM_SEED = 3
# Seeded users never sign in; this is not a hash any password verifies against.
PLACEHOLDER_PASSWORD_HASH = "!bench-seeded-user-without-password"  # noqa: S105

ADJECTIVES = ("Cozy", "Pixel", "Lunar", "Rapid", "Quiet", "Neon", "Salty", "Mellow", "Brave")
NOUNS = ("Otter", "Falcon", "Golem", "Panda", "Comet", "Badger", "Wizard", "Kraken", "Heron")
TAGS = (
    "english", "chill", "competitive", "speedrun", "casual", "educational", "cozy", "pvp",
    "variety", "music", "coding", "drawing", "retro", "indie", "esports", "roleplay",
    "challenge", "first-playthrough", "no-commentary", "community", "ranked", "horror",
    "strategy", "lofi", "beginner-friendly",
)  # fmt: skip
# Most channels are in a few big categories; the rest share what is left.
CATEGORY_WEIGHTS = {"gaming": 30.0, "just-chatting": 20.0, "music": 8.0, "art": 5.0}
LANGUAGES = {"en": 75.0, "es": 8.0, "pt": 5.0, "de": 4.0, "fr": 4.0, "ja": 2.0, "ko": 2.0}


# --- seeding -------------------------------------------------------------------------------


@dataclass(slots=True)
class SeedRows:
    """Every row to insert, by table, in insertion order."""

    users: list[dict[str, Any]] = field(default_factory=list)
    channels: list[dict[str, Any]] = field(default_factory=list)
    streams: list[dict[str, Any]] = field(default_factory=list)
    stream_tags: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    search_documents: list[dict[str, Any]] = field(default_factory=list)
    live_stream_ids: list[uuid.UUID] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "users": len(self.users),
            "channels": len(self.channels),
            "live_streams": len(self.live_stream_ids),
            "streams": len(self.streams),
            "stream_tags": len(self.stream_tags),
            "search_documents": len(self.search_documents),
        }


def zipf_counts(rng: random.Random, n: int, top: int, exponent: float) -> list[int]:
    """n counts shaped like top / rank**exponent (+-20%), shuffled: a few big, a long tail."""
    counts = [int(top / rank**exponent * rng.uniform(0.8, 1.2)) for rank in range(1, n + 1)]
    rng.shuffle(counts)
    return counts


def weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _user_and_channel(
    rng: random.Random, index: int, categories: dict[str, float], followers: int, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    adjective, noun = rng.choice(ADJECTIVES), rng.choice(NOUNS)
    username = f"{adjective}{noun}{index}"
    created = now - timedelta(days=rng.uniform(1, 1000))
    user = {
        "id": new_id(),
        "email": f"{username.lower()}@bench.example",
        "username": username,
        "username_key": username.lower(),
        "display_name": f"{adjective} {noun} {index}",
        "bio": None,
        "role": "creator",
        "status": "active",
        "email_verified": True,
        "password_hash": PLACEHOLDER_PASSWORD_HASH,
        "preferences": {},
        "created_at": created,
        "updated_at": created,
    }
    category = weighted(rng, categories)
    channel = {
        "id": new_id(),
        "owner_id": user["id"],
        "slug": username.lower(),
        "name": user["display_name"],
        "description": f"{adjective} {category.replace('-', ' ')} with {noun.lower()} energy",
        "category": category,
        "language": weighted(rng, LANGUAGES),
        "is_mature": rng.random() < 0.05,
        "settings": {},
        "follower_count": followers,
        "created_at": created,
        "updated_at": created,
    }
    return user, channel


def _stream(
    rng: random.Random,
    channel: dict[str, Any],
    *,
    started: datetime,
    ended: datetime | None,
    viewers: int,
    now: datetime,
) -> dict[str, Any]:
    seconds = int(((ended or now) - started).total_seconds())
    topic = rng.choice(TAGS).replace("-", " ")
    return {
        "id": new_id(),
        "channel_id": channel["id"],
        "title": f"{channel['name']}: {topic} day {rng.randint(1, 400)}",
        "description": rng.choice((None, "Come hang out!", "New run, new records.")),
        "category": channel["category"],
        "language": channel["language"],
        "is_mature": channel["is_mature"],
        "status": "live" if ended is None else "ended",
        "scheduled_for": None,
        "started_at": started,
        "ended_at": ended,
        "viewer_count": viewers if ended is None else 0,
        "peak_viewer_count": int(viewers * rng.uniform(1.0, 1.5)),
        "viewer_seconds": viewers * seconds,
        "viewers_sampled_at": now if ended is None else ended,
        "total_tokens_received": 0,
        "created_at": started,
        "updated_at": ended or now,
    }


def _document(kind: str, ref_id: uuid.UUID, title: str, body: str, now: datetime) -> dict[str, Any]:
    return {"kind": kind, "ref_id": ref_id, "title": title[:256], "body": body, "updated_at": now}


def _add_streams(rows: SeedRows, rng: random.Random, now: datetime) -> None:
    """Ended streams on some channels, then one live stream on each of LIVE_STREAMS others."""
    by_channel = {c["id"]: c for c in rows.channels}
    for channel in rng.sample(rows.channels, CHANNELS_WITH_ENDED_STREAMS):
        for _ in range(rng.randint(1, 3)):
            started = now - timedelta(days=rng.uniform(1, 60))
            ended = started + timedelta(hours=rng.uniform(0.5, 6))
            rows.streams.append(
                _stream(
                    rng, channel, started=started, ended=ended, viewers=rng.randint(0, 300), now=now
                )
            )
    viewers = zipf_counts(rng, LIVE_STREAMS, top=40_000, exponent=1.3)
    for channel, count in zip(rng.sample(rows.channels, LIVE_STREAMS), viewers, strict=True):
        started = now - timedelta(minutes=rng.uniform(2, 600))
        stream = _stream(rng, channel, started=started, ended=None, viewers=count, now=now)
        rows.streams.append(stream)
        rows.live_stream_ids.append(stream["id"])
    used: Counter[str] = Counter()
    for stream in rows.streams:
        tags = sorted(rng.sample(TAGS, rng.randint(1, 5)))
        used.update(tags)
        rows.stream_tags += [{"stream_id": stream["id"], "tag": tag} for tag in tags]
        if stream["status"] == "live":  # ended streams leave the search index
            channel = by_channel[stream["channel_id"]]
            body_parts = [channel["name"], channel["slug"], stream["category"], *tags]
            body = " ".join(filter(None, [*body_parts, stream["description"]]))
            rows.search_documents.append(
                _document("stream", stream["id"], stream["title"], body, now)
            )
    rows.tags = [{"name": name, "use_count": n} for name, n in sorted(used.items())]


def seed_rows(category_slugs: list[str], now: datetime) -> SeedRows:
    """The whole data set, reproducible from RANDOM_SEED (ids aside)."""
    rng = random.Random(RANDOM_SEED)  # noqa: S311 - test data, not secrets
    categories = {slug: CATEGORY_WEIGHTS.get(slug, 2.0) for slug in category_slugs}
    rows = SeedRows()
    followers = zipf_counts(rng, CHANNELS, top=500_000, exponent=1.1)
    for index, follower_count in enumerate(followers):
        user, channel = _user_and_channel(rng, index, categories, follower_count, now)
        rows.users.append(user)
        rows.channels.append(channel)
        rows.search_documents.append(
            _document("user", user["id"], f"{user['display_name']} {user['username']}", "", now)
        )
        body = " ".join([channel["slug"], user["username"], channel["category"]])
        body = f"{body} {channel['description']}"
        rows.search_documents.append(
            _document("channel", channel["id"], channel["name"], body, now)
        )
    _add_streams(rows, rng, now)
    return rows


async def seed(url: str) -> SeedRows:
    """Bulk-insert the data set into a migrated database; return what went in."""
    import_all_models()
    tables: dict[str, Table] = dict(Base.metadata.tables)
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            slugs = list(await connection.scalars(select(tables["categories"].c.slug)))
            rows = seed_rows(slugs, utcnow())
            for name in ("users", "channels", "streams", "stream_tags", "tags", "search_documents"):
                await connection.execute(insert(tables[name]), getattr(rows, name))
        if engine.dialect.name == "postgresql":
            # Autovacuum analyses a freshly loaded table within a minute or so; do it now
            # rather than measure the planner without statistics.
            async with engine.connect() as connection:
                await connection.execute(text("ANALYZE"))
                await connection.commit()
    finally:
        await engine.dispose()
    return rows


# --- the server ----------------------------------------------------------------------------


# --- the load ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    paths: tuple[str, ...]  # more than one: wrk cycles over them


@dataclass(slots=True)
class Result:
    endpoint: str
    path: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    cpu_pct: dict[str, float]
    vs_healthz: float = 0.0
    profile: dict[str, Any] | None = None

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def endpoints(stream_ids: list[uuid.UUID]) -> list[Endpoint]:
    return [
        Endpoint("healthz", ("/healthz",)),
        Endpoint("browse", ("/api/v1/browse",)),
        Endpoint("browse gaming newest", ("/api/v1/browse?category=gaming&sort=newest",)),
        Endpoint("stream by id", tuple(f"/api/v1/streams/{i}" for i in stream_ids)),
    ]


def check_endpoints(base: str, chosen: list[Endpoint]) -> None:
    """One request to each path first: a benchmark of error pages would measure nothing."""
    with httpx.Client(base_url=base, timeout=10) as http:
        for endpoint in chosen:
            for path in endpoint.paths:
                response = http.get(path)
                if response.status_code != 200:
                    raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
        browse = http.get("/api/v1/browse").json()
        if len(browse["data"]) != 20 or not browse["has_more"]:
            raise RuntimeError(f"browse returned {len(browse['data'])} streams, expected 20")


# wrk runs one Lua state per thread; `done` runs once with the totals of all of them.
LUA_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, '
    .. '"p99_us": %d, "max_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""

LUA_CYCLE = """
local paths = {%s}
local next_path = 0
request = function()
  next_path = next_path %% #paths + 1
  return wrk.format("GET", paths[next_path])
end
"""


def wrk_script(endpoint: Endpoint) -> str:
    if len(endpoint.paths) == 1:
        return LUA_DONE
    return LUA_CYCLE % ", ".join(json.dumps(p) for p in endpoint.paths) + LUA_DONE


def run_wrk(
    wrk: str, url: str, script: Path, *, seconds: int, args: argparse.Namespace
) -> dict[str, int]:
    command = [wrk, "--threads", str(args.threads), "--connections", str(args.connections)]
    command += ["--duration", f"{seconds}s", "--timeout", "30s", "--script", str(script), url]
    done = subprocess.run(  # noqa: S603 - our own fixed command line
        command, capture_output=True, text=True, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith("WRK_RESULT "):
            return dict(json.loads(line.removeprefix("WRK_RESULT ")))
    raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def measure(
    wrk: str, base: str, pid: int, endpoint: Endpoint, work_dir: Path, args: argparse.Namespace
) -> Result:
    """Warm up, then load one endpoint for the measured duration."""
    script = work_dir / f"{endpoint.name.replace(' ', '_')}.lua"
    script.write_text(wrk_script(endpoint))
    url = base + endpoint.paths[0]
    if args.warmup > 0:
        run_wrk(wrk, url, script, seconds=args.warmup, args=args)
    profiler = (
        start_profiler(pid, args.duration)
        if args.py_spy and endpoint.name == GOAL_ENDPOINT
        else None
    )
    before = cpu_sample(pid)
    raw = run_wrk(wrk, url, script, seconds=args.duration, args=args)
    cpu = cpu_shares(before, cpu_sample(pid))
    seconds = raw["duration_us"] / 1e6
    return Result(
        endpoint=endpoint.name,
        path=endpoint.paths[0] if len(endpoint.paths) == 1 else "/api/v1/streams/{id}",
        requests=raw["requests"],
        seconds=round(seconds, 3),
        rps=round(raw["requests"] / seconds, 1),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors={k: raw[k] for k in ("status", "connect", "read", "write", "timeout") if raw[k]},
        cpu_pct=cpu,
        profile=finish_profiler(*profiler) if profiler else None,
    )


# --- profiling (optional) ------------------------------------------------------------------


# --- output --------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    header = (
        f"{'endpoint':<22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs healthz':>10} "
        f"{'server cpu':>10} {'db cpu':>7} {'other cpu':>9} {'errors':>6}"
    )
    rows = [
        f"{r.endpoint:<22} {r.rps:>8.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.vs_healthz:>10.2f} "
        f"{r.cpu_pct['server']:>9.0f}% {r.cpu_pct['database']:>6.0f}% "
        f"{r.cpu_pct['other']:>8.0f}% {r.error_count:>6}"
        for r in results
    ]
    return "\n".join([header, "-" * len(header), *rows])


def quiet_machine_warning(results: list[Result]) -> str | None:
    """A warning when other processes took CPU from the server or wrk while measuring."""
    busy = [r for r in results if r.cpu_pct["other"] > OTHER_CPU_WARNING_PCT]
    if not busy:
        return None
    worst = max(r.cpu_pct["other"] for r in busy)
    names = ", ".join(r.endpoint for r in busy)
    return (
        f"WARNING: other processes used up to {worst:.0f}% of a core while measuring {names}; "
        "the machine was not quiet and these numbers are low. Run again on a quiet machine."
    )


def goal(results: list[Result]) -> dict[str, Any]:
    ceiling = next(r for r in results if r.endpoint == "healthz")
    browse = next(r for r in results if r.endpoint == GOAL_ENDPOINT)
    return {
        "endpoint": browse.path,
        "browse_rps": browse.rps,
        "healthz_rps": ceiling.rps,
        "ratio": browse.vs_healthz,
        "required_ratio": GOAL_RATIO,
        "errors": browse.error_count,
        "met": browse.vs_healthz >= GOAL_RATIO and browse.error_count == 0,
    }


def describe_goal(verdict: dict[str, Any]) -> str:
    line = (
        f"Goal (GET /api/v1/browse >= {GOAL_RATIO:.0%} of /healthz, no errors): "
        f"{'MET' if verdict['met'] else 'NOT MET'} - browse {verdict['browse_rps']:.0f} req/s "
        f"vs /healthz {verdict['healthz_rps']:.0f} req/s = {verdict['ratio']:.0%}"
    )
    if verdict["errors"]:
        line += f"; {verdict['errors']} errors"
    return line


def wrk_version(wrk: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own fixed command line
        [wrk, "--version"], capture_output=True, text=True, check=False
    )
    # "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer" -> "wrk debian/4.1.0-3+b2"
    return (done.stdout or done.stderr).splitlines()[0].partition(" [")[0].strip()


def write_results(document: dict[str, Any], database: Database) -> Path:
    return write_json(f"api_browse-{database.kind}", document)


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Browse and stream-page requests/s and p99")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server, postgresql+asyncpg://user@host:5432/db; the bench makes "
        f"and drops its own database {BENCH_DATABASE} there (default: SQLite)",
    )
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per endpoint")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per endpoint")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--py-spy", action="store_true", help="profile the server during browse")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="STAGECAST_NAME=VALUE",
        help="one more server setting, applied last (repeatable), "
        "e.g. STAGECAST_DIRECTORY_CACHE_SECONDS=0",
    )
    args = parser.parse_args(argv)
    for setting in args.server_env:
        if not setting.startswith("STAGECAST_") or "=" not in setting:
            parser.error(f"--server-env takes STAGECAST_NAME=VALUE, not {setting!r}")
    return args


def run(args: argparse.Namespace, wrk: str, database: Database, work_dir: Path) -> dict[str, Any]:
    env = stagecast_env(work_dir, database, args.server_env)
    migrate(env, work_dir)
    results: list[Result] = []
    with running_server(env, work_dir) as (base, pid):
        # Seeded once the server runs: at start a node ends the live streams no node owns
        # (crash recovery, media/nodes.py), and these rows have no pipeline behind them.
        started = time.monotonic()
        rows = asyncio.run(seed(database.resolved_url(work_dir)))
        counts = rows.counts()
        print(
            f"seeded in {time.monotonic() - started:.1f} s: "
            + ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in counts.items()),
            flush=True,
        )
        stream_ids = random.Random(RANDOM_SEED).sample(rows.live_stream_ids, STREAM_PAGE_IDS)  # noqa: S311
        chosen = endpoints(stream_ids)
        check_endpoints(base, chosen)
        for endpoint in chosen:
            print(f"  {endpoint.name} ...", flush=True)
            results.append(measure(wrk, base, pid, endpoint, work_dir, args))
    ceiling = results[0].rps
    for result in results:
        result.vs_healthz = round(result.rps / ceiling, 3) if ceiling else 0.0
    return {"seeded": counts, "results": results}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed; install it with:\n  apt-get install -y wrk")
        return 2
    info = machine(wrk=wrk_version(wrk))
    print(
        f"cores: {info['cores']} (usable {info['usable_cores']}); python {info['python']}; "
        f"{info['wrk']}; load average before {info['load_average']}\n"
        f"stagecast source: {info['stagecast']} ({Path(stagecast.__file__).parent})"
    )
    with database_for(args.database_url) as database:
        print(
            f"database: {database.kind}; wrk {args.threads} threads, {args.connections} "
            f"connections, {args.warmup} s warm-up + {args.duration} s per endpoint",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="stagecast-browse-") as tmp:
            outcome = run(args, wrk, database, Path(tmp))
    results: list[Result] = outcome["results"]
    verdict = goal(results)
    print("\n" + table(results) + "\n")
    print(describe_goal(verdict))
    if warning := quiet_machine_warning(results):
        print(warning)
    for result in results:
        if result.errors:
            print(f"  {result.endpoint}: errors {result.errors}")
        if result.profile:
            print_profile(result.profile, during="browse")
    document = {
        "benchmark": "api_browse",
        "database": database.kind,
        "machine": info,
        "settings": vars(args),
        "seeded": outcome["seeded"],
        "results": [asdict(r) for r in results],
        "goal": verdict,
    }
    path = write_results(document, database)
    print(f"\nJSON: {path.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
