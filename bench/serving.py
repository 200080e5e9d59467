"""Starting and stopping the servers a benchmark measures: a free port, a process, readiness."""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from pg import fresh_database
from sqlalchemy.engine import make_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stagecast_command(port: int) -> list[str]:
    """`stagecast serve` from this interpreter, on 127.0.0.1:port."""
    return [sys.executable, "-m", "stagecast", "serve", "--host", "127.0.0.1", "--port", str(port)]


def raise_fd_limit() -> None:
    """Raise this process's open-file limit to the hard limit (children inherit it): load
    generators and the servers they start hold thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = 1_048_576 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without its `STAGECAST_*` variables, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGECAST_")}
    env.update(settings)
    return env


def wait_until_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, within: float = 120
) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it exits or never does."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {within:.0f} s:\n{log.read_text()[-3000:]}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Interrupt (a clean shutdown); kill if it has not exited after 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def launched(
    command: list[str], *, env: dict[str, str], cwd: Path, log: Path, ready_url: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process, ready once `ready_url` answers 200, for the duration of the block."""
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own fixed command line
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            wait_until_ready(ready_url, process, log)
            yield process
        finally:
            stop_process(process)


@dataclass(frozen=True, slots=True)
class Creator:
    """An account registered through the API, with its own channel."""

    username: str
    access_token: str
    channel_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def register_creators(http: httpx.Client, prefix: str, count: int) -> list[Creator]:
    """`count` accounts named `<prefix><n>`, each with a channel `<prefix>-<n>`, via the API."""
    password = "Bench-" + secrets.token_urlsafe(16)
    made = []
    for index in range(count):
        name = f"{prefix}{index}"
        body = {"username": name, "email": f"{name}@example.com", "password": password}
        response = http.post("/api/v1/auth/register", json=body)
        response.raise_for_status()
        token = response.json()["access_token"]
        response = http.post(
            "/api/v1/channels",
            json={"slug": f"{prefix.replace('_', '-')}-{index}"},
            headers={"Authorization": f"Bearer {token}"},
        )
        response.raise_for_status()
        made.append(Creator(name, token, str(response.json()["id"])))
    return made


BENCH_DATABASE = "stagecast_bench"


@dataclass(frozen=True, slots=True)
class Database:
    """Where the server keeps its data: `url` None means SQLite in the data directory."""

    kind: str
    url: str | None

    def resolved_url(self, data_dir: Path) -> str:
        return self.url or f"sqlite+aiosqlite:///{(data_dir / 'stagecast.db').resolve()}"


@contextlib.contextmanager
def database_for(server_url: str | None) -> Iterator[Database]:
    """SQLite (nothing to prepare), or a fresh `stagecast_bench` on a PostgreSQL server."""
    if server_url is None:
        yield Database(kind="sqlite", url=None)
        return
    if make_url(server_url).get_backend_name() != "postgresql":
        raise SystemExit("--database-url must be postgresql+asyncpg://...")
    with fresh_database(server_url, BENCH_DATABASE) as url:
        yield Database(kind="postgresql", url=url)


def stagecast_env(data_dir: Path, database: Database, extra: list[str]) -> dict[str, str]:
    """The server's environment: ours minus any STAGECAST_* setting (a developer's .env or
    shell must not change what is measured), plus the bench's, plus `--server-env`."""
    env = clean_env()
    env.update(
        STAGECAST_DATA_DIR=str(data_dir),
        STAGECAST_RATE_LIMIT_ENABLED="false",
        STAGECAST_LOG_LEVEL="WARNING",
        STAGECAST_RTMP_PORT="0",  # not measured here; never clash with a running server
    )
    if database.url:
        env["STAGECAST_DATABASE_URL"] = database.url
    for setting in extra:
        name, _, value = setting.partition("=")
        env[name] = value
    return env


def migrate(env: dict[str, str], cwd: Path) -> None:
    """`stagecast db upgrade`, so that the schema is exactly the migrations'."""
    command = [sys.executable, "-m", "stagecast", "db", "upgrade"]
    done = subprocess.run(  # noqa: S603 - our own fixed command line
        command, env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"db upgrade failed:\n{done.stdout}{done.stderr}")


@contextlib.contextmanager
def running_server(env: dict[str, str], work_dir: Path) -> Iterator[tuple[str, int]]:
    """`stagecast serve` on a free port until the block ends: (base URL, pid)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = work_dir / "server.log"
    with launched(
        stagecast_command(port), env=env, cwd=work_dir, log=log, ready_url=f"{base}/readyz"
    ) as process:
        yield base, process.pid
