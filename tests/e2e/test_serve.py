"""`stagecast serve` as a real process on a free port, spoken to over real HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import fresh_database_url
from tests.e2e.serve import ServeProcess, serve_environment, stagecast_command

PASSWORD = "Correct-Horse-7"


@dataclass
class Served:
    base: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def __iter__(self) -> Iterator[Any]:  # `base, env = server`
        return iter((self.base, self.env))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    """Start `stagecast serve` on the embedded default (SQLite in its data dir) or on the
    PostgreSQL server under test, and wait until it is ready."""
    database_url = None
    if os.environ.get("STAGECAST_TEST_DATABASE_URL"):
        database_url = fresh_database_url(tmp_path, "e2e")
    node = ServeProcess(serve_environment(tmp_path / "var", database_url), tmp_path / "serve.log")
    try:
        node.start()
        assert node.process is not None
        yield Served(node.base, node.env, node.process)
    finally:
        node.stop()


def test_serve_applies_migrations_and_answers_over_http(server: Served, tmp_path: Path) -> None:
    base, env = server
    if "STAGECAST_DATABASE_URL" not in env:
        assert (tmp_path / "var" / "stagecast.db").exists()
    assert (tmp_path / "var" / "keys" / "jwt-ed25519.pem").exists()
    with httpx.Client(base_url=base, timeout=10) as http:
        deep = http.get("/api/v1/health/deep")
        assert deep.status_code == 200
        assert deep.json()["checks"]["database"]["status"] == "ok"

        registered = http.post(
            "/api/v1/auth/register",
            json={"username": "e2e_streamer", "email": "e2e@example.com", "password": PASSWORD},
        )
        assert registered.status_code == 201, registered.text
        token = registered.json()["access_token"]
        me = http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json()["username"] == "e2e_streamer"
        assert me.headers["x-request-id"]
        assert me.headers["x-frame-options"] == "DENY"

        missing = http.get("/api/v1/nothing-here")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert "stagecast_http_requests_total" in http.get("/metrics").text


def _create_admin(
    env: dict[str, str], email: str, username: str, password: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        stagecast_command(
            "users", "create-admin", "--email", email, "--username", username, "--password-stdin"
        ),
        input=f"{password}\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_create_admin_cli_then_login(server: Served) -> None:
    base, env = server
    result = _create_admin(env, "root@example.com", "root_admin", PASSWORD)
    assert result.returncode == 0, result.stderr
    assert "created admin root_admin" in result.stdout
    with httpx.Client(base_url=base, timeout=10) as http:
        login = http.post(
            "/api/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD}
        )
        assert login.status_code == 200
        assert login.json()["user"]["role"] == "admin"
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert http.get("/api/v1/admin/users", headers=headers).status_code == 200

    weak = _create_admin(env, "x@example.com", "x_admin", "short")
    assert weak.returncode != 0
    assert "VALIDATION_ERROR" in weak.stderr
    duplicate = _create_admin(env, "root@example.com", "other_admin", PASSWORD)
    assert duplicate.returncode != 0
    assert "EMAIL_TAKEN" in duplicate.stderr


async def test_concurrent_refreshes_of_one_token_cannot_both_win(
    server: Served,
) -> None:
    base, _ = server
    async with httpx.AsyncClient(base_url=base, timeout=20) as http:
        registered = await http.post(
            "/api/v1/auth/register",
            json={"username": "racer", "email": "racer@example.com", "password": PASSWORD},
        )
        refresh = registered.json()["refresh_token"]
        http.cookies.clear()
        results = await asyncio.gather(
            *(http.post("/api/v1/auth/refresh", json={"refresh_token": refresh}) for _ in range(8))
        )
    statuses = sorted(r.status_code for r in results)
    # At most one exchange succeeds; every other one is refused (and, being reuse, revokes).
    assert statuses.count(200) <= 1
    assert all(s in (200, 401) for s in statuses), [(r.status_code, r.text[:300]) for r in results]
    assert statuses.count(401) >= 7


def test_db_upgrade_and_current_commands(tmp_path: Path) -> None:
    env = serve_environment(tmp_path / "cli", None)
    upgraded = subprocess.run(
        stagecast_command("db", "upgrade"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    current = subprocess.run(
        stagecast_command("db", "current"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert current.returncode == 0, current.stderr
    lines = dict(line.split(":", 1) for line in current.stdout.strip().splitlines())
    assert lines["current"].strip() == lines["head"].strip() != "None"


def test_serve_stops_promptly_with_viewers_connected(server: Served) -> None:
    """A viewer's websocket never ends by itself: stopping must not wait for it."""
    host, port = server.base.removeprefix("http://").split(":")
    viewer = socket.create_connection((host, int(port)))
    viewer.sendall(
        (
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert b"101 Switching Protocols" in viewer.recv(4096)
    try:
        started = time.monotonic()
        server.process.send_signal(signal.SIGINT)
        server.process.wait(timeout=30)
        # The graceful timeout (10 s) bounds it even for a client that never answers.
        assert time.monotonic() - started < 20
    finally:
        viewer.close()
