"""What every benchmark shares: one percentile, the machine's description, the source
version measured, the JSON writer, and where the CPU went while measuring (Linux /proc: the
server, PostgreSQL, the load generator, the kernel's interrupts, everybody else)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stagecast

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
# Machine CPU used by none of ours above this (percent of a core) makes a run suspect.
OTHER_CPU_WARNING_PCT = 20.0


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted values (NaN for none), in their own unit."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def source_version() -> str:
    """The commit of the Stagecast source measured (the one imported), `+dirty` if edited."""
    root = Path(stagecast.__file__).resolve().parents[2]
    git = shutil.which("git")
    if git is None:
        return "unknown"
    head = subprocess.run(  # noqa: S603 - our own fixed command line
        [git, "-C", str(root), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if head.returncode != 0:
        return "unknown"
    changes = subprocess.run(  # noqa: S603 - our own fixed command line
        [git, "-C", str(root), "status", "--porcelain", "--", "src", "pyproject.toml"],
        capture_output=True,
        text=True,
        check=False,
    )
    return head.stdout.strip() + ("+dirty" if changes.stdout.strip() else "")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine(**tools: Any) -> dict[str, Any]:
    """The machine, the interpreter and the source measured, plus the tools' versions."""
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **tools,
        "stagecast": source_version(),
        "stagecast_path": str(Path(stagecast.__file__).parent),
        "load_average": load_average(),
    }


def write_json(name: str, document: dict[str, Any]) -> Path:
    """Write a run's numbers to bench/results/<name>.json (not committed) and return it."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


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


class CpuWindow:
    """The CPU shares (`cpu_shares`) from now until `shares()`, with the kernel's interrupt
    work (loopback packets and fsyncs) taken out of `other` and shown on its own.
    PostgreSQL backends that exit in between still count."""

    def __init__(self, server_pid: int | None) -> None:
        self._pid = server_pid
        self._before = cpu_sample(server_pid, include_exited_postgres=True)
        self._interrupts = interrupt_seconds()

    def shares(self) -> dict[str, float]:
        after = cpu_sample(self._pid, include_exited_postgres=True)
        interrupts = interrupt_seconds() - self._interrupts
        shares = cpu_shares(self._before, after)
        shares["interrupts"] = round(100 * interrupts / (after.wall - self._before.wall), 1)
        shares["other"] = round(max(0.0, shares["other"] - shares["interrupts"]), 1)
        return shares


# --- profiling -------------------------------------------------------------------------


def start_profiler(pid: int, seconds: int) -> tuple[subprocess.Popen[bytes], Path] | None:
    """`py-spy record` on the server for the measured run, as collapsed stacks.

    `--gil` keeps only samples of the thread holding the GIL: the server is one Python
    process, so that is where its CPU goes, and the database driver's threads waiting on
    their queues (aiosqlite has one per connection) do not drown it out.
    """
    beside = Path(sys.executable).parent / "py-spy"
    tool = str(beside) if beside.exists() else shutil.which("py-spy")
    if tool is None:
        print("  (py-spy not found: .venv/bin/pip install py-spy)")
        return None
    out = Path(tempfile.mkstemp(prefix="stagecast-bench-", suffix=".pyspy.txt")[1])
    command = [tool, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200"]
    command += ["--gil", "--format", "raw", "--output", str(out), "--nonblocking"]
    process = subprocess.Popen(  # noqa: S603 - our own fixed command line
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return process, out


def finish_profiler(process: subprocess.Popen[bytes], out: Path) -> dict[str, Any]:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    try:
        raw = out.read_text()
    finally:
        out.unlink(missing_ok=True)
    return top_functions(raw) if raw else {"error": f"py-spy wrote nothing ({process.returncode})"}


def split_frame(frame: str) -> tuple[str, str]:
    """`handler (pkg/module.py:123)` -> (`handler`, `pkg/module.py`)."""
    name, _, where = frame.partition(" (")
    return name, where.rpartition(":")[0] or where.rstrip(")")


def top_functions(raw: str, limit: int = 15) -> dict[str, Any]:
    """From collapsed stacks: self time by package and by function, and the inclusive time
    of Stagecast's own functions (which show what each part of a request costs)."""
    packages: Counter[str] = Counter()
    own: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [split_frame(f) for f in stack.split(";")]
        total += count
        leaf, leaf_path = frames[-1]
        packages[leaf_path.split("/")[0] or "?"] += count
        own[f"{leaf} ({leaf_path})"] += count
        for name, path in {f for f in frames if f[1].startswith("stagecast/")}:
            if not path.endswith(("cli.py", "__main__.py")):  # every sample passes there
                ours[f"{name} ({path})"] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / max(total, 1), 1)) for f, n in counter.most_common(limit)]

    return {
        "samples": total,
        "self_by_package_pct": share(packages),
        "self_pct": share(own),
        "stagecast_inclusive_pct": share(ours),
    }


def print_profile(profile: dict[str, Any], *, during: str) -> None:
    if "error" in profile:
        print(f"  {profile['error']}")
        return
    print(f"\npy-spy --gil during {during} ({profile['samples']} samples)")
    for title, key in (
        ("self time by package", "self_by_package_pct"),
        ("self time by function", "self_pct"),
        ("inclusive time of Stagecast's functions", "stagecast_inclusive_pct"),
    ):
        print(f"{title}:")
        for frame, pct in profile[key]:
            print(f"  {pct:5.1f}%  {frame}")
