"""Where the CPU went while measuring (Linux /proc): the server, PostgreSQL, the load, others."""

from __future__ import annotations

import contextlib
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU seconds used so far: by the whole machine, the server, PostgreSQL and the load
    generator (the benchmark's child processes that have exited: wrk, pgbench, ...)."""

    wall: float
    machine: float
    server: float
    database: float
    load_generator: float


def _process_ticks(stat: str, *, reaped: bool = False) -> int:
    """utime + stime of a /proc/<pid>/stat; with `reaped`, plus cutime + cstime: the CPU of
    its children that have exited and been waited for."""
    fields = stat.rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks + int(fields[13]) + int(fields[14]) if reaped else ticks


def _postgres_ticks(*, include_exited: bool = False) -> int:
    """CPU of every process named `postgres` here: the database server's share of the work.

    A backend's CPU is lost from this sum when its connection closes; with `include_exited`
    it is found again in the postmaster's reaped children's time, so that connections closed
    between two samples (pgbench's, at the end of its run) still count.
    """
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):  # processes come and go
            text = stat.read_text()
            if text.partition("(")[2].startswith("postgres)"):
                total += _process_ticks(text, reaped=include_exited)
    return total


def cpu_sample(server_pid: int | None, *, include_exited_postgres: bool = False) -> CpuSample:
    """A sample now; `server_pid` None when no server of ours runs (its share stays 0)."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # load generators, once exited
    server = _process_ticks(Path(f"/proc/{server_pid}/stat").read_text()) if server_pid else 0
    return CpuSample(
        wall=time.monotonic(),
        machine=busy / TICKS_PER_SECOND,
        server=server / TICKS_PER_SECOND,
        database=_postgres_ticks(include_exited=include_exited_postgres) / TICKS_PER_SECOND,
        load_generator=children.ru_utime + children.ru_stime,
    )


def interrupt_seconds() -> float:
    """CPU seconds the kernel has spent in interrupts and softirqs (network packets, disk
    completions), which no process is charged for: part of `other` in `cpu_shares`."""
    ticks = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    return (int(ticks[5]) + int(ticks[6])) / TICKS_PER_SECOND  # irq + softirq


def cpu_shares(before: CpuSample, after: CpuSample) -> dict[str, float]:
    """Percent of one core each used between two samples; `other` is nobody of ours."""
    wall = after.wall - before.wall
    shares = {
        name: round(100 * (getattr(after, name) - getattr(before, name)) / wall, 1)
        for name in ("machine", "server", "database", "load_generator")
    }
    ours = shares["server"] + shares["database"] + shares["load_generator"]
    shares["other"] = round(max(0.0, shares["machine"] - ours), 1)
    return shares
