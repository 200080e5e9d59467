"""Health checks: database, disk, ffmpeg and Redis, each with a status and its figures; the
process's memory."""

from __future__ import annotations

import asyncio
import ctypes
import functools
import shutil
import subprocess
import time
import tracemalloc
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import imageio_ffmpeg
from sqlalchemy import text

from stagecast.db import migrate
from stagecast.db.base import utcnow
from stagecast.db.engine import READ_ONLY
from stagecast.media.s3 import S3MediaStore
from stagecast.runtime import Runtime

CheckStatus = Literal["ok", "degraded", "down"]
CHECK_TIMEOUT_S = 3.0


@dataclass
class Check:
    status: CheckStatus
    details: dict[str, Any] = field(default_factory=dict)


def find_ffmpeg(configured: str | None) -> str | None:
    """Return the ffmpeg binary: the configured one, else the one imageio-ffmpeg ships."""
    if configured:
        return shutil.which(configured) or None
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError:
        return shutil.which("ffmpeg")


def ffmpeg_version(binary: str | None) -> str | None:
    """Run `ffmpeg -version` once (blocking; call it from a thread)."""
    if binary is None:
        return None
    try:
        result = subprocess.run(  # noqa: S603 - the binary comes from settings or the wheel
            [binary, "-hide_banner", "-version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    first = result.stdout.splitlines()[0] if result.stdout else ""
    return first.removeprefix("ffmpeg version ").split(" ")[0] or "unknown"


async def check_database(runtime: Runtime) -> Check:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), runtime.db.read_engine.connect() as connection:
            # A probe only reads: it must not queue behind a write transaction.
            await connection.execution_options(**READ_ONLY)
            await connection.execute(text("SELECT 1"))
            revision = await connection.run_sync(migrate.current_revision)
    except Exception as exc:
        return Check("down", {"error": type(exc).__name__})
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    head = migrate.head_revision()
    details = {
        "dialect": runtime.db.dialect,
        "latency_ms": latency_ms,
        "revision": revision,
        "head": head,
    }
    return Check("ok" if revision == head else "degraded", details)


async def check_redis(runtime: Runtime) -> Check | None:
    if runtime.redis is None:
        return None
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await runtime.redis.ping()
    except Exception as exc:
        # Redis only carries what can be lost: without it the platform degrades, not stops.
        return Check("degraded", {"error": type(exc).__name__})
    return Check("ok", {"latency_ms": round((time.perf_counter() - started) * 1000, 2)})


async def check_media_store(runtime: Runtime) -> Check | None:
    """The S3 bucket, when media lives there (the local store is the disk check's)."""
    store = runtime.media.store if runtime.media is not None else None
    if not isinstance(store, S3MediaStore):
        return None
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await store.probe()
    except Exception as exc:
        # Without its bucket no stream can be packaged or played: down, not degraded.
        return Check("down", {"bucket": store.bucket, "error": type(exc).__name__})
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return Check("ok", {"bucket": store.bucket, "latency_ms": latency_ms})


def check_disk(runtime: Runtime) -> Check:
    settings = runtime.settings
    usage = shutil.disk_usage(settings.data_dir)
    details = {
        "path": str(settings.data_dir.resolve()),
        "free_bytes": usage.free,
        "free_gb": round(usage.free / 1024**3, 2),
        "total_gb": round(usage.total / 1024**3, 2),
    }
    if usage.free < settings.disk_unhealthy_bytes:
        return Check("down", details)
    if usage.free < settings.disk_degraded_bytes:
        return Check("degraded", details)
    return Check("ok", details)


def check_ffmpeg(runtime: Runtime) -> Check:
    if runtime.ffmpeg_version is None:
        # The API works without ffmpeg; live transcoding does not.
        return Check("degraded", {"error": "ffmpeg not found"})
    return Check("ok", {"version": runtime.ffmpeg_version})


async def deep_health(runtime: Runtime) -> dict[str, Any]:
    """Run every check; overall status: unhealthy if a critical one is down."""
    database, redis, media_store = await asyncio.gather(
        check_database(runtime), check_redis(runtime), check_media_store(runtime)
    )
    checks: dict[str, Check] = {
        "database": database,
        "disk": check_disk(runtime),
        "ffmpeg": check_ffmpeg(runtime),
    }
    if redis is not None:
        checks["redis"] = redis
    if media_store is not None:
        checks["media_store"] = media_store
    critical = ("database", "disk", "media_store")
    if any(name in checks and checks[name].status == "down" for name in critical):
        overall = "unhealthy"
    elif any(c.status != "ok" for c in checks.values()):
        overall = "degraded"
    else:
        overall = "healthy"
    settings = runtime.settings
    return {
        "status": overall,
        "timestamp": utcnow().isoformat(),
        "checks": {name: {"status": c.status, "details": c.details} for name, c in checks.items()},
        "config": {
            "environment": settings.environment,
            "database": runtime.db.dialect,
            "redis_configured": settings.redis_url is not None,
            "media_store": settings.media.store,
            "rate_limiting": settings.rate_limits.enabled,
            "access_token_ttl_s": int(settings.access_token_ttl.total_seconds()),
            # Seed 003's summary. Tokens are signed with an Ed25519 key from the settings or
            # the data directory, never a default one: once running, it is always set.
            "jwt_secret_set": True,
            "jwt_key_source": "settings" if settings.jwt_private_key else "data_dir",
            "stripe_connect_enabled": settings.money.payout_provider == "stripe",
            "platform_fee_rate": settings.money.platform_fee_percent / 100,
            # Failed payout transfers are retried by money's scheduled jobs.
            "transfer_retry_enabled": settings.money.jobs_enabled
            and runtime.payout_provider is not None,
        },
    }


async def readiness(runtime: Runtime) -> tuple[str, dict[str, Any]]:
    """ready / degraded / not_ready, for load balancers and orchestrators."""
    if runtime.shutting_down:
        return "not_ready", {"reason": "shutting down"}
    database = await check_database(runtime)
    if database.status == "down":
        return "not_ready", {"database": database.details}
    if database.details.get("revision") != database.details.get("head"):
        return "not_ready", {"reason": "database migrations pending", **database.details}
    redis = await check_redis(runtime)
    if redis is not None and redis.status != "ok":
        return "degraded", {"redis": redis.details}
    return "ready", {}


# --- memory ----------------------------------------------------------------------------------


_MALLINFO2_FIELDS = (
    "arena", "ordblks", "smblks", "hblks", "hblkhd",
    "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
)  # fmt: skip


class _MallInfo2(ctypes.Structure):
    # glibc's `struct mallinfo2` (2.33+), every field a size_t.
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2_FIELDS]


@functools.cache
def _mallinfo2() -> Any | None:
    try:
        function = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):  # not glibc, or older than 2.33
        return None
    function.restype = _MallInfo2
    return function


def _malloc_in_use() -> int | None:
    """Bytes C malloc has handed out and not freed (large Python objects, media buffers)."""
    function = _mallinfo2()
    if function is None:
        return None
    info = function()
    return int(info.uordblks + info.hblkhd)


def _proc_memory(pid: int | str) -> dict[str, int]:
    """The `kB` figures of /proc/<pid>/status in bytes (none where there is no /proc)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    figures: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        number, _, unit = value.strip().partition(" ")
        if unit == "kB" and number.isdigit():
            figures[name] = int(number) * 1024
    return figures


def memory_usage(child_pids: Iterable[int]) -> dict[str, int | None]:
    """Seed 004's `memoryUsage` (Node's keys) with this process's nearest figures, in bytes;
    docs/media.md says what each one is here. None where the platform has no such figure."""
    own = _proc_memory("self")
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
    return {
        "rss": own.get("VmRSS"),  # resident now, not the peak
        "heapTotal": own.get("RssAnon"),  # resident anonymous memory: every allocator's arenas
        "heapUsed": traced if traced is not None else _malloc_in_use(),
        "external": sum(_proc_memory(pid).get("VmRSS", 0) for pid in child_pids),  # ffmpeg
    }
