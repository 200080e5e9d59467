"""Each test gets its own app from `create_app(test_settings)` and its own rolled-back
transaction, on SQLite by default or on PostgreSQL when STAGECAST_TEST_DATABASE_URL is set."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from stagecast.app import create_app
from stagecast.config import (
    AdminSettings,
    InteractionSettings,
    MediaSettings,
    MoneySettings,
    PrivacySettings,
    RateLimits,
    Settings,
    VodSettings,
)
from stagecast.db import migrate
from stagecast.db.engine import Database, create_engine

TEST_DATABASE_URL = os.environ.get("STAGECAST_TEST_DATABASE_URL")


def logged(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    """The structlog events called `event` that reached standard logging, as their dicts.

    (structlog's `capture_logs` misses loggers cached before it began; caplog sees all.)"""
    return [
        record.msg
        for record in caplog.records
        if isinstance(record.msg, dict) and record.msg.get("event") == event
    ]


TEST_REDIS_URL = os.environ.get("STAGECAST_TEST_REDIS_URL")
# Two checkouts (git worktrees) may run the suite on one PostgreSQL server at once.
CHECKOUT_TAG = hashlib.sha256(str(Path(__file__).resolve().parent).encode()).hexdigest()[:6]


async def _recreate_postgres_database(server_url: str, name: str) -> None:
    url = make_url(server_url)
    connection = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def fresh_database_url(tmp_dir: Path, name: str) -> str:
    """An empty database: a new SQLite file, or a new database on the PostgreSQL server."""
    if TEST_DATABASE_URL:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        db_name = f"stagecast_{name}_{worker}_{CHECKOUT_TAG}"
        asyncio.run(_recreate_postgres_database(TEST_DATABASE_URL, db_name))
        return (
            make_url(TEST_DATABASE_URL).set(database=db_name).render_as_string(hide_password=False)
        )
    return f"sqlite+aiosqlite:///{tmp_dir / f'{name}.db'}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = fresh_database_url(tmp_path_factory.mktemp("db"), "test")
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def committed_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database whose writes stay: for tests of a real server, whose connections a
    rolled-back test transaction cannot span."""
    url = fresh_database_url(tmp_path_factory.mktemp("committed"), "committed")
    migrate.upgrade(url)
    return url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A database whose every write is rolled back after the test."""
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        transaction = await connection.begin()
        yield Database(engine, bind=connection)
        await transaction.rollback()
    await engine.dispose()


def make_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    """Test settings: cheap password hashing, generous limits, a private Redis key prefix."""
    values: dict[str, object] = {
        "environment": "test",
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "redis_url": TEST_REDIS_URL,
        "key_prefix": f"stagecast-test:{uuid.uuid4().hex[:12]}",
        "password_time_cost": 1,
        "password_memory_kib": 8192,
        "password_parallelism": 1,
        # Tests change things and read them back at once; test_cache.py turns it on.
        "directory_cache_seconds": 0,
        # Tests that publish media turn RTMP on, on a free port (tests/media/).
        "rtmp_enabled": False,
        # Tests run money's scheduled jobs themselves (stagecast.money.jobs.run_once).
        "money": MoneySettings(jobs_enabled=False),
        # And the recordings' (previews, retention): stagecast.vods.jobs.run_once.
        "vods": VodSettings(jobs_enabled=False),
        # And privacy's exports and retention (stagecast.privacy.jobs.run_once).
        "privacy": PrivacySettings(jobs_enabled=False),
        # An in-process app shares one connection between requests and background work:
        # the media nodes' heartbeat would interleave its savepoints with a test's. Tests of
        # nodes and crashes run real servers with short heartbeats (tests/e2e/test_crash.py).
        "media": MediaSettings(node_heartbeat_seconds=3600),
        # Likewise the polls' sweep and the rooms' windows: tests run them (Pulse.flush/sweep);
        # tests/interactions/test_live_rooms.py runs a real server with them on.
        "interactions": InteractionSettings(background=False),
        # Likewise the audit writer and its retention: tests flush (runtime.audit.flush) and
        # run them (stagecast.admin.jobs.run_once).
        "admin": AdminSettings(background=False),
        "rate_limits": RateLimits(
            auth="1000/minute",
            anonymous="10000/minute",
            authenticated="10000/minute",
            livestream_status="10000/minute",
            livestream_general="10000/minute",
            livestream_stream="100000/minute",
            socket_connections="10000/minute",
            socket_events="100000/minute",
            reports="10000/minute",
        ),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
async def app(settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
    application = create_app(settings, database=database)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield http
