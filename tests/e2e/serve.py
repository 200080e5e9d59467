"""`stagecast serve` as a real process: started, waited for, stopped or killed, restarted."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from tests.conftest import TEST_REDIS_URL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_environment(
    data_dir: Path, database_url: str | None, *, key_prefix: str | None = None, **settings: str
) -> dict[str, str]:
    """The environment of a test node: cheap hashing, any free RTMP port, the test Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGECAST_")}
    env.update(
        STAGECAST_DATA_DIR=str(data_dir),
        STAGECAST_PASSWORD_TIME_COST="1",
        STAGECAST_RTMP_PORT="0",  # any free port: tests run side by side
        STAGECAST_PASSWORD_MEMORY_KIB="8192",
        STAGECAST_PASSWORD_PARALLELISM="1",
    )
    if database_url:
        env["STAGECAST_DATABASE_URL"] = database_url
    if TEST_REDIS_URL:
        env["STAGECAST_REDIS_URL"] = TEST_REDIS_URL
        env["STAGECAST_KEY_PREFIX"] = key_prefix or (
            f"stagecast-e2e:{os.getpid()}:{time.monotonic_ns()}"
        )
    env.update(settings)
    return env


def stagecast_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "stagecast", *args]


class ServeProcess:
    """One node: `stagecast serve` on a fixed port, its output in a log file."""

    def __init__(self, env: dict[str, str], log_path: Path, *, port: int | None = None) -> None:
        self.env = env
        self.log_path = log_path
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, *, within: float = 60) -> ServeProcess:
        """Start it and wait until it answers `/readyz`."""
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            stagecast_command("serve", "--host", "127.0.0.1", "--port", str(self.port)),
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + within
        while True:
            if self.process.poll() is not None:
                raise AssertionError(self.log_path.read_text())
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not become ready in {within} s")
            time.sleep(0.2)

    def kill9(self) -> None:
        """Die at once, as a crash or the OOM killer does: nothing is cleaned up."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self._close_log()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
