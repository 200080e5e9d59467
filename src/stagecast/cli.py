"""`stagecast serve | db upgrade | db current | db revision | users create-admin`."""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import uvicorn
from pydantic import ValidationError

from stagecast.config import Settings
from stagecast.crypto import SecretBox, load_or_create_secret

if TYPE_CHECKING:
    from fastapi import FastAPI

    from stagecast.runtime import Runtime


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise click.ClickException(f"invalid settings:\n{exc}") from exc


GRACEFUL_SHUTDOWN_SECONDS = 10


def tune_garbage_collector() -> None:
    """Collect young objects less often and leave what startup built out of collections.

    With thousands of sockets the heap holds millions of tracked objects, and CPython's default
    thresholds (700, 10, 10) promote short-lived request and message objects into the old
    generation fast enough to trigger full collections that stop the event loop for seconds
    (measured with bench/chat_fanout.py: p99 delivery 2-7 s at 5,000 viewers, ~100 ms with
    these settings). Objects that live for the process (modules, the app) are frozen.
    """
    gc.set_threshold(50_000, 20, 100)
    gc.freeze()


def uvicorn_config(app: FastAPI, *, host: str, port: int, **options: Any) -> uvicorn.Config:
    """How uvicorn serves the app, in `stagecast serve` and in the tests alike."""
    from stagecast.http_limits import ConnectionGuard
    from stagecast.realtime.fanout import TransportProtocol

    runtime: Runtime = app.state.runtime
    guard = ConnectionGuard(runtime.settings, runtime.metrics)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        # uvicorn's httptools protocol with read timeouts and connection caps (http_limits.py).
        http=guard.protocol_class(),
        timeout_keep_alive=runtime.settings.http_keep_alive_seconds,
        # Hands each websocket's transport to the room fan-out (realtime/fanout.py).
        ws=TransportProtocol,
        # Viewers' websockets never end on their own: on shutdown they are asked to close
        # (1012), and whatever is still open after this long is cut, so a stop never hangs.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
        **options,
    )


@click.group()
@click.version_option(package_name="stagecast")
def main() -> None:
    """Stagecast: a self-hostable live-streaming platform."""


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="HTTP port (default 8080).")
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None, help="Data folder (./var)."
)
@click.option("--rtmp-port", type=int, default=None, help="RTMP ingest port (default 1935).")
def serve(host: str | None, port: int | None, data_dir: Path | None, rtmp_port: int | None) -> None:
    """Run the platform: HTTP API, Socket.IO, RTMP ingest and media pipelines, in one process."""
    from stagecast.app import create_app
    from stagecast.db import migrate

    settings = _settings(host=host, port=port, data_dir=data_dir, rtmp_port=rtmp_port)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.auto_migrate:
        # Before the event loop starts: Alembic's async environment runs its own loop.
        migrate.upgrade(settings.resolved_database_url, secret=load_or_create_secret(settings))
    app = create_app(settings)
    config = uvicorn_config(
        app,
        host=settings.host,
        port=settings.port,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    tune_garbage_collector()
    uvicorn.Server(config).run()


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply pending migrations."""
    from stagecast.db import migrate

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(
        settings.resolved_database_url, revision, secret=load_or_create_secret(settings)
    )
    click.echo(f"database at {revision}")


@db.command("current")
def db_current() -> None:
    """Print the revision the database is at and the newest one."""
    from sqlalchemy.ext.asyncio import AsyncEngine

    from stagecast.db import migrate
    from stagecast.db.engine import create_engine

    async def read(engine: AsyncEngine) -> str | None:
        async with engine.connect() as connection:
            return await connection.run_sync(migrate.current_revision)

    engine = create_engine(_settings().resolved_database_url)
    try:
        current = asyncio.run(read(engine))
    finally:
        asyncio.run(engine.dispose())
    click.echo(f"current: {current}\nhead:    {migrate.head_revision()}")


@db.command("revision")
@click.option("-m", "--message", required=True)
def db_revision(message: str) -> None:
    """Autogenerate a migration from the models (for developers)."""
    from stagecast.db import migrate

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.resolved_database_url, secret=load_or_create_secret(settings))
    migrate.make_revision(settings.resolved_database_url, message)


@main.group()
def users() -> None:
    """User accounts."""


@users.command("create-admin")
@click.option("--email", required=True)
@click.option("--username", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_admin(email: str, username: str, password_stdin: bool) -> None:
    """Create an administrator account."""
    from stagecast.accounts import service as accounts
    from stagecast.accounts.models import Role
    from stagecast.accounts.schemas import RegisterIn
    from stagecast.accounts.security import Passwords
    from stagecast.db import migrate
    from stagecast.db.engine import Database
    from stagecast.errors import AppError

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.auto_migrate:
        migrate.upgrade(settings.resolved_database_url, secret=load_or_create_secret(settings))
    try:
        data = RegisterIn(username=username, email=email, password=password)
    except ValidationError as exc:
        raise click.ClickException(f"invalid account details:\n{exc}") from exc

    async def create() -> str:
        password_hash = await accounts.hash_new_password(
            Passwords(settings), password=password, username=username, email=email
        )
        database = Database.from_url(settings.resolved_database_url)
        try:
            async with database.session() as session, session.begin():
                user = await accounts.create_user(
                    session,
                    SecretBox(load_or_create_secret(settings)),
                    data=data,
                    password_hash=password_hash,
                    role=Role.ADMIN,
                )
                return str(user.id)
        finally:
            await database.dispose()

    try:
        user_id = asyncio.run(create())
    except AppError as exc:
        details = "; ".join(e["message"] for e in exc.errors) if exc.errors else exc.detail
        raise click.ClickException(f"{exc.code}: {details}") from exc
    click.echo(f"created admin {username} ({user_id})")
