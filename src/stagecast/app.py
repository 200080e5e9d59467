"""The application factory: one ASGI app holding the API, and later sockets and ingest."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import structlog
from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from redis.asyncio import Redis

from stagecast import __version__, route_memo
from stagecast.accounts import principals
from stagecast.accounts import routes as accounts_routes
from stagecast.accounts.principals import PrincipalCache
from stagecast.accounts.security import Passwords, TokenSigner
from stagecast.accounts.service import AUTH_REVOKED, USER_CHANGED
from stagecast.accounts.touches import Touches
from stagecast.admin import routes as admin_routes
from stagecast.admin import system as system_routes
from stagecast.admin.audit import AuditMiddleware, AuditWriter
from stagecast.admin.jobs import run_forever as run_admin_jobs
from stagecast.admin.maintenance import MaintenanceMiddleware
from stagecast.admin.switches import Switches
from stagecast.cache import CachedPagesMiddleware, ResponseCache
from stagecast.channels import routes as channels_routes
from stagecast.chat import events as chat_events
from stagecast.chat import routes as chat_routes
from stagecast.clips import routes as clips_routes
from stagecast.clips import service as clips_service
from stagecast.clips.jobs import ClipRenderer
from stagecast.config import Settings
from stagecast.crypto import SecretBox, load_or_create_secret
from stagecast.db import retry as db_retry
from stagecast.db.engine import Database
from stagecast.db.retry import DisconnectRetryMiddleware
from stagecast.errors import install_error_handlers
from stagecast.health import routes as health_routes
from stagecast.health import service as health
from stagecast.interactions import events as interaction_events
from stagecast.interactions import routes as interaction_routes
from stagecast.interactions.pulse import Pulse
from stagecast.kyc import routes as kyc_routes
from stagecast.leaderboards import routes as leaderboards_routes
from stagecast.leaderboards.sorted_sets import LeaderboardFeed
from stagecast.media import events as media_events
from stagecast.media import ingest
from stagecast.media import routes as media_routes
from stagecast.media.s3 import S3MediaStore
from stagecast.media.service import LiveMedia
from stagecast.media.store import LocalMediaStore, MediaStore
from stagecast.middleware import (
    AllowedHostsMiddleware,
    BodySizeLimitMiddleware,
    OpenCorsMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
    SeedBasePathMiddleware,
)
from stagecast.moderation import events as moderation_events
from stagecast.moderation import routes as moderation_routes
from stagecast.moderation.flags import ChatWatch
from stagecast.money import routes as money_routes
from stagecast.money.jobs import run_forever as run_money_jobs
from stagecast.money.providers import build_payment_provider, build_payout_provider
from stagecast.notifications import routes as notifications_routes
from stagecast.observability import Metrics, configure_logging
from stagecast.openapi import build_openapi
from stagecast.privacy import routes as privacy_routes
from stagecast.privacy.jobs import run_forever as run_privacy_jobs
from stagecast.ratelimit import RateLimiter, general_rate_limit
from stagecast.realtime import events as realtime_events
from stagecast.realtime.bus import BUS, install_session_hooks
from stagecast.realtime.cluster import ClusterBus
from stagecast.realtime.server import RealtimeServer
from stagecast.runtime import Runtime
from stagecast.streams import routes as streams_routes
from stagecast.tournaments import events as tournament_events
from stagecast.tournaments import routes as tournaments_routes
from stagecast.vods import routes as vods_routes
from stagecast.vods.jobs import run_forever as run_vod_jobs
from stagecast.web import routes as web_routes

log = structlog.get_logger(__name__)

API_PREFIX = "/api/v1"


def _api_router() -> APIRouter:
    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(general_rate_limit)])
    api.include_router(accounts_routes.auth_router)
    api.include_router(accounts_routes.sessions_router)
    api.include_router(accounts_routes.api_keys_router)
    api.include_router(accounts_routes.users_router)
    api.include_router(accounts_routes.admin_router)
    api.include_router(channels_routes.router)
    api.include_router(channels_routes.social_router)
    api.include_router(channels_routes.discovery_router)
    api.include_router(streams_routes.router)
    api.include_router(streams_routes.live_router)
    api.include_router(notifications_routes.router)
    api.include_router(chat_routes.router)
    api.include_router(moderation_routes.router)
    api.include_router(moderation_routes.reports_router)
    api.include_router(moderation_routes.queue_router)
    api.include_router(moderation_routes.admin_reports_router)
    api.include_router(vods_routes.router)
    api.include_router(interaction_routes.router)
    api.include_router(clips_routes.router)
    api.include_router(money_routes.router)
    api.include_router(money_routes.webhooks)
    api.include_router(kyc_routes.router)
    api.include_router(kyc_routes.admin_router)
    # Before the users' `/{user_id}` routes are reached: `/users/me/...` is privacy's.
    api.include_router(privacy_routes.router)
    api.include_router(privacy_routes.admin_router)
    api.include_router(leaderboards_routes.router)
    api.include_router(tournaments_routes.router)
    api.include_router(admin_routes.router)
    api.include_router(admin_routes.public_router)
    api.include_router(system_routes.router)
    return api


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    """Build the app. `database` lets tests hand in one bound to a rolled-back transaction."""
    settings = settings or Settings()
    configure_logging(settings)
    route_memo.install()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(
        settings=settings,
        tokens=TokenSigner(settings),
        passwords=Passwords(settings),
        metrics=Metrics(),
        limiter=RateLimiter(
            settings.rate_limits, redis_url=settings.redis_url, key_prefix=settings.key_prefix
        ),
        secrets=SecretBox(load_or_create_secret(settings)),
        response_cache=ResponseCache(ttl_seconds=settings.directory_cache_seconds),
        touches=Touches(),
        principals=PrincipalCache(ttl_seconds=settings.auth_principal_cache_seconds),
    )
    runtime.private_store = LocalMediaStore(settings.data_dir / "private")
    install_session_hooks()
    db_retry.install_session_hooks()
    principals.install_session_hooks()
    cluster = ClusterBus(redis_url=settings.redis_url, channel=f"{settings.key_prefix}:cluster")
    runtime.cluster = cluster
    runtime.principals.follow_cluster(cluster)
    runtime.metrics.registry.register(principals.PrincipalMetrics(runtime.principals))
    runtime.switches = Switches(runtime)
    runtime.switches.install()
    runtime.audit = AuditWriter(runtime)
    runtime.chat_watch = ChatWatch(settings.moderation, lambda: runtime.db)
    realtime = RealtimeServer(runtime)
    # This node forgets a changed principal at commit; every node, through the cluster bus.
    realtime.bus.on_commit.append(runtime.principals.on_commit)
    realtime.bus.on_commit.append(cluster.forwarder(frozenset({AUTH_REVOKED, USER_CHANGED})))
    for domain in (
        realtime_events,
        chat_events,
        moderation_events,
        interaction_events,
        tournament_events,
    ):
        domain.register(realtime)
    runtime.realtime = realtime
    media = LiveMedia(runtime, _media_store(settings))
    runtime.media = media
    media_events.register(realtime, media)
    pulse = Pulse(runtime)
    runtime.pulse = pulse
    realtime.bus.on_commit.append(pulse.forget)
    runtime.clips = ClipRenderer(runtime)
    # A clip keeps its media when its VOD's goes (deleted, expired or hidden): copied first.
    runtime.before_vod_media_withdrawn.append(clips_service.detach_clips_of_stream)
    _install_money(runtime)
    lifespan = _lifespan(runtime, cluster, realtime, media, pulse, database)
    realtime.bus.on_commit.append(streams_routes.forget_cached_pages(runtime.response_cache))
    runtime.leaderboards = LeaderboardFeed(runtime)
    realtime.bus.on_commit.append(runtime.leaderboards.on_commit)

    app = FastAPI(
        title="Stagecast",
        version=__version__,
        description="Self-hostable live streaming: accounts, channels, chat, media and money.",
        lifespan=lifespan,
        # /docs is the web app's (web/routes.py): Swagger UI from the build, not a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    install_error_handlers(app)

    app.include_router(_api_router())
    app.include_router(health_routes.router, prefix=API_PREFIX)
    # Seed 003 also serves the health checks at the root; kept, marked deprecated.
    app.include_router(health_routes.router, deprecated=True, include_in_schema=False)
    app.include_router(health_routes.probes_router)
    app.include_router(accounts_routes.jwks_router)
    app.include_router(clips_routes.media_router)  # before /hls/{stream_id}/…
    app.include_router(media_routes.router)
    app.mount("/socket.io", realtime.asgi_app())
    app.include_router(web_routes.router)  # last: its `/{slug}` channel pages match the rest

    _add_middleware(app, runtime)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app


def _media_store(settings: Settings) -> MediaStore:
    """The configured media store: the local directory, or an S3 bucket."""
    if settings.media.store == "s3":
        s3 = settings.s3
        if s3.bucket is None:  # Settings refuses it; for the type checker
            raise ValueError("media store s3 needs STAGECAST_S3_BUCKET")
        return S3MediaStore(
            bucket=s3.bucket,
            prefix=s3.prefix,
            endpoint_url=s3.endpoint_url,
            region=s3.region,
            access_key_id=s3.access_key_id,
            secret_access_key=s3.secret_access_key,
            redirect=s3.playback == "redirect",
            public_url=s3.public_url,
            presign_seconds=s3.presign_seconds,
        )
    return LocalMediaStore(settings.data_dir / "media")


def _lifespan(
    runtime: Runtime,
    cluster: ClusterBus,
    realtime: RealtimeServer,
    media: LiveMedia,
    pulse: Pulse,
    database: Database | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Open everything the app holds (database, Redis, sockets, RTMP, jobs) and close it."""
    settings = runtime.settings

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.database = database or Database.from_url(
            settings.resolved_database_url,
            echo=settings.database_echo,
            pool_recycle=settings.database_pool_recycle_seconds,
            write_wait=settings.database_write_wait_seconds,
        )
        if settings.redis_url:
            runtime.redis = Redis.from_url(settings.redis_url)
        # Events recorded in a transaction go to the bus once it commits.
        runtime.db.sessionmaker.configure(info={BUS: realtime.bus})
        runtime.touches.start(runtime.db, settings.auth_touch_flush_seconds)
        await cluster.start()
        await realtime.start()
        await media.store.open()
        # Streams a killed run left live end before any publisher can come back.
        await media.start()
        pulse.start()
        clip_renders = runtime.clips
        if clip_renders is not None:
            await clip_renders.start()
        audit_writer = runtime.audit
        if audit_writer is not None:
            audit_writer.start()
        rtmp = ingest.rtmp_server(media) if settings.rtmp_enabled else None
        if rtmp is not None:
            await rtmp.start()
            runtime.rtmp_port = rtmp.port
        jobs = _start_jobs(runtime)
        runtime.ffmpeg_version = await asyncio.to_thread(
            health.ffmpeg_version, health.find_ffmpeg(settings.ffmpeg_path)
        )
        log.info(
            "started",
            version=__version__,
            environment=settings.environment,
            database=runtime.db.dialect,
            redis=settings.redis_url is not None,
            ffmpeg=runtime.ffmpeg_version,
        )
        try:
            yield
        finally:
            runtime.shutting_down = True
            for job in jobs:
                job.cancel()
            steps = _shutdown_steps(
                runtime, rtmp, media, pulse, realtime, cluster, clip_renders, audit_writer
            )
            for name, step in steps:
                await _bounded(name, step)
            await _bounded("media_store", media.store.close)
            await runtime.db.dispose()

    return lifespan


# A stop never hangs: each step of the shutdown gets this long, then the next one runs.
SHUTDOWN_STEP_SECONDS = 15.0


def _shutdown_steps(
    runtime: Runtime,
    rtmp: Any,
    media: LiveMedia,
    pulse: Pulse,
    realtime: RealtimeServer,
    cluster: ClusterBus,
    clip_renders: Any,
    audit_writer: Any,
) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
    """What the lifespan closes, in order (the database last, after these)."""
    steps: list[tuple[str, Callable[[], Awaitable[Any]] | None]] = [
        ("money", lambda: _close_money(runtime)),
        ("rtmp", rtmp.close if rtmp is not None else None),
        ("clip_renders", clip_renders.stop if clip_renders is not None else None),
        ("media", media.stop),
        ("pulse", pulse.stop),
        ("realtime", realtime.stop),
        # The flags raised by the last messages.
        ("chat_watch", runtime.chat_watch.drain if runtime.chat_watch is not None else None),
        ("leaderboards", runtime.leaderboards.stop if runtime.leaderboards is not None else None),
        ("cluster", cluster.stop),
        # The last audit records, before the database closes.
        ("audit", audit_writer.stop if audit_writer is not None else None),
        ("redis", runtime.redis.aclose if runtime.redis is not None else None),
        ("touches", lambda: runtime.touches.stop(runtime.db)),
    ]
    return [(name, step) for name, step in steps if step is not None]


async def _bounded(name: str, step: Callable[[], Awaitable[Any]]) -> None:
    """Run one shutdown step for at most `SHUTDOWN_STEP_SECONDS`; one that overruns or fails
    is logged and left behind, and the shutdown goes on."""
    try:
        await asyncio.wait_for(step(), SHUTDOWN_STEP_SECONDS)
    except TimeoutError:
        log.warning("shutdown_step_overran", step=name, seconds=SHUTDOWN_STEP_SECONDS)
    except Exception:
        log.exception("shutdown_step_failed", step=name)


def _start_jobs(runtime: Runtime) -> list[asyncio.Task[None]]:
    """The scheduled work each domain runs in-process (tests turn them off and run them)."""
    settings = runtime.settings
    wanted = (
        ("money-jobs", run_money_jobs, settings.money.jobs_enabled),
        ("vod-jobs", run_vod_jobs, settings.vods.jobs_enabled),
        ("admin-jobs", run_admin_jobs, settings.admin.background),
        ("privacy-jobs", run_privacy_jobs, settings.privacy.jobs_enabled),
    )
    return [
        asyncio.create_task(run(runtime), name=name) for name, run, enabled in wanted if enabled
    ]


def _install_money(runtime: Runtime) -> None:
    """The payment and payout providers the settings choose (missing credentials fail the
    start); the provider's webhooks are the ones taken."""
    settings = runtime.settings
    payments = build_payment_provider(
        settings.money,
        sandbox_secret=runtime.secrets.lookup_hash("sandbox-webhooks", "v1").encode(),
        base_url=settings.public_url or f"http://{settings.host}:{settings.port}",
    )
    runtime.payments = payments
    runtime.webhook_providers[payments.name] = payments
    runtime.payout_provider = build_payout_provider(settings.money)


async def _close_money(runtime: Runtime) -> None:
    for provider in {*runtime.webhook_providers.values(), runtime.payout_provider}:
        close = getattr(provider, "aclose", None)
        if close is not None:
            await close()


def _add_middleware(app: FastAPI, runtime: Runtime) -> None:
    # Added innermost first: every response, errors included, gets an id, a metric and the
    # security headers.
    # Innermost: a retried request runs everything inside it again, nothing outside it.
    app.add_middleware(
        DisconnectRetryMiddleware, retries=runtime.settings.database_disconnect_retries
    )
    app.add_middleware(
        CachedPagesMiddleware, cache=runtime.response_cache, limit=general_rate_limit
    )
    kyc = runtime.settings.kyc
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=runtime.settings.max_body_bytes,
        # A KYC submission carries its documents; each is checked against its own limit.
        path_limits={
            f"{API_PREFIX}/kyc/submit": kyc.max_documents * kyc.max_document_bytes + 64 * 1024
        },
    )
    # Outside the cached pages (none is served during maintenance); the audit outside it, so
    # that refused writes are recorded too. Both inside the seed path rewrite: they see the
    # scope the router fills in (the matched route).
    app.add_middleware(MaintenanceMiddleware, runtime=runtime)
    app.add_middleware(AuditMiddleware, runtime=runtime)
    if runtime.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=runtime.settings.cors_origins,
            allow_credentials="*" not in runtime.settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-API-Key",
                "Idempotency-Key",
                "X-Request-ID",
                "X-CSRF-Token",
            ],
            expose_headers=[
                "X-Request-ID",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "Retry-After",
            ],
        )
    # Outside the configured CORS: media and seed 004's routes are open to every origin.
    app.add_middleware(OpenCorsMiddleware)
    app.add_middleware(SeedBasePathMiddleware)
    app.add_middleware(AllowedHostsMiddleware, hosts=runtime.settings.trusted_hosts)
    app.add_middleware(RequestContextMiddleware, metrics=runtime.metrics)
    # Outermost of ours: every answer, the 500s the request context renders included.
    app.add_middleware(
        SecurityHeadersMiddleware, force_hsts=runtime.settings.environment == "production"
    )
