"""What one running app holds: settings, database, token signer, limiter, metrics, Redis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stagecast.config import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from stagecast.accounts.principals import PrincipalCache
    from stagecast.accounts.security import Passwords, TokenSigner
    from stagecast.accounts.touches import Touches
    from stagecast.admin.audit import AuditWriter
    from stagecast.admin.switches import Switches
    from stagecast.cache import ResponseCache
    from stagecast.clips.jobs import ClipRenderer
    from stagecast.crypto import SecretBox
    from stagecast.db.engine import Database
    from stagecast.interactions.pulse import Pulse
    from stagecast.leaderboards.sorted_sets import LeaderboardFeed
    from stagecast.media.service import LiveMedia
    from stagecast.media.store import MediaStore
    from stagecast.moderation.flags import ChatWatch
    from stagecast.money.providers import PaymentProvider, PayoutProvider
    from stagecast.observability import Metrics
    from stagecast.ratelimit import RateLimiter
    from stagecast.realtime.cluster import ClusterBus
    from stagecast.realtime.server import RealtimeServer
    from stagecast.vods.service import VodMediaHook


@dataclass
class Runtime:
    """Built by `create_app`, opened and closed by its lifespan; one per app, never global."""

    settings: Settings
    tokens: TokenSigner
    passwords: Passwords
    metrics: Metrics
    limiter: RateLimiter
    secrets: SecretBox
    response_cache: ResponseCache
    touches: Touches  # "last used" of sessions and API keys, written in batches
    principals: PrincipalCache  # recently authenticated sessions, forgotten on any change
    database: Database | None = None
    redis: Redis | None = None
    realtime: RealtimeServer | None = None
    cluster: ClusterBus | None = None  # commands to every node (Redis pub/sub)
    media: LiveMedia | None = None
    pulse: Pulse | None = None  # polls' tallies and reactions' bursts, once a window
    leaderboards: LeaderboardFeed | None = None  # sorted sets' updates (with Redis)
    clips: ClipRenderer | None = None  # renders clips' MP4s in the background
    switches: Switches | None = None  # feature flags and maintenance mode, cached per node
    audit: AuditWriter | None = None  # the audit records waiting to be written
    chat_watch: ChatWatch | None = None  # automatic flags of chat (moderation/flags.py)
    payments: PaymentProvider | None = None  # where purchases are paid
    payout_provider: PayoutProvider | None = None
    # Every provider whose webhooks are taken, by name (the configured one and the sandbox).
    webhook_providers: dict[str, PaymentProvider] = field(default_factory=dict)
    # What only staff or its owner may read (KYC documents, data exports), outside the
    # media store that /hls serves; everything in it is encrypted (crypto.SecretBox).
    private_store: MediaStore | None = None
    rtmp_port: int | None = None  # bound by the lifespan (settings may say 0: any free port)
    ffmpeg_version: str | None = None
    shutting_down: bool = False
    # Run before a recording's media is withdrawn: deleted, or no longer public (the clips
    # package registers clips.service.detach_clips_of_stream; see vods.service.VodMediaHook).
    before_vod_media_withdrawn: list[VodMediaHook] = field(default_factory=list)

    @property
    def db(self) -> Database:
        if self.database is None:
            raise RuntimeError("the database is opened by the app's lifespan")
        return self.database
