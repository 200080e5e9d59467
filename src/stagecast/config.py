"""Settings, read from `STAGECAST_*` environment variables (or a `.env` file)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "production", "test"]


class RateLimits(BaseSettings):
    """Limits per category, in the `limits` notation ("10/minute", "5/10 seconds")."""

    model_config = SettingsConfigDict(env_prefix="STAGECAST_RATE_LIMIT_", extra="ignore")

    enabled: bool = True
    # Seed 000: public endpoints 100/min per IP, authenticated 300/min per user.
    anonymous: str = "100/minute"
    authenticated: str = "300/minute"
    # Seed 002: auth attempts 10/min.
    auth: str = "10/minute"
    # Seed 002: streaming 100/min, payments 10/min, tips 60/min; seed 000: chat 5 per 10 s.
    streaming: str = "100/minute"
    payments: str = "10/minute"
    tips: str = "60/minute"
    chat: str = "5/10 seconds"
    # Seed 004's `/livestream` routes, per IP: status endpoints (status, health, debug) 60/min,
    # the general ones (active, start, stop) 100/min, playlists and segments 1000/min.
    livestream_status: str = "60/minute"
    livestream_general: str = "100/minute"
    livestream_stream: str = "1000/minute"
    # Seed 004's WebSocket limits: connections per IP, events per connection (browser-ingest
    # `stream-data` chunks excepted: the media's own chunk-rate and bitrate limits hold them).
    socket_connections: str = "10/minute"
    socket_events: str = "100/minute"
    # Reactions per user (each goes to the room inside a burst, not on its own).
    reactions: str = "10/5 seconds"
    # Reports of content (a VOD, later clips, messages, users), per user.
    reports: str = "10/minute"
    # Seed 003's `POST /validate` (availability checks), per IP: it must not enumerate users.
    validation: str = "30/minute"


class MediaSettings(BaseSettings):
    """Live media: segments, the ABR ladder, limits (`STAGECAST_MEDIA_*`)."""

    model_config = SettingsConfigDict(env_prefix="STAGECAST_MEDIA_", extra="ignore")

    # Target segment length; segments are cut at the first keyframe past it.
    segment_seconds: float = Field(default=1.0, ge=0.5, le=6)
    # Low-Latency HLS: partial segments of at most `part_seconds`, blocking playlist reloads
    # and preload hints, so players hold back about three parts instead of three segments.
    low_latency: bool = True
    part_seconds: float = Field(default=0.34, ge=0.1, le=1.0)
    # How much of a live stream its live playlist keeps (the DVR window).
    dvr_window_seconds: float = Field(default=120, ge=10)
    # Renditions below the source, by short side; the source is always kept, never upscaled.
    ladder: list[int] = Field(default_factory=lambda: [720, 480, 360])
    # A segment (and an independent part) starts only at a keyframe: a source whose keyframes
    # are farther apart than this gets a stream-health warning, and, with `reencode_long_gops`,
    # its top rendition is re-encoded with a keyframe every segment instead of passed through.
    max_keyframe_seconds: float = Field(default=2.0, ge=0.5, le=10)
    reencode_long_gops: bool = True
    thumbnail_seconds: float = Field(default=5, ge=1)
    max_pipelines: int = Field(default=8, ge=1)
    max_input_bitrate: int = Field(default=20_000_000, ge=100_000)
    max_input_height: int = Field(default=2160, ge=144)
    # A publisher that sends nothing for this long is dropped (then the reconnect window runs).
    publisher_timeout_seconds: float = Field(default=10, gt=0)
    # Browser ingest: the largest WebM chunk accepted (MediaRecorder sends one a second).
    max_chunk_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    # This node's name among the nodes on one database (default: host, data dir and port).
    # A node that starts again under the same name ends the streams its last run left live.
    node_name: str | None = Field(default=None, min_length=1, max_length=200)
    # Each node heartbeats this often; a node silent for `node_stale_seconds` is gone, and
    # any node ends its streams from what they stored.
    node_heartbeat_seconds: float = Field(default=5, gt=0)
    node_stale_seconds: float = Field(default=30, gt=0)
    # Where segments, parts, recordings, thumbnails and clips go: `local` (data_dir/media) or
    # `s3` (the `STAGECAST_S3_*` settings).
    store: Literal["local", "s3"] = "local"


class S3Settings(BaseSettings):
    """The S3-compatible bucket of `STAGECAST_MEDIA_STORE=s3` (`STAGECAST_S3_*`).

    Unset credentials fall back to botocore's own chain (AWS_* variables, a profile, an
    instance role); `endpoint_url` names any S3-compatible service (MinIO, Ceph, R2…)."""

    model_config = SettingsConfigDict(env_prefix="STAGECAST_S3_", extra="ignore")

    bucket: str | None = Field(default=None, min_length=3, max_length=63)
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    # How players get segments, parts and MP4s: `proxy` (the app reads them from the bucket
    # and answers) or `redirect` (302 to the bucket or CDN; playlists always come from the
    # app, which holds blocking reloads). Redirects go to `public_url` + the object's key when
    # set (a public bucket or a CDN in front of it: anyone with the URL may read), else to a
    # presigned URL valid `presign_seconds`.
    playback: Literal["proxy", "redirect"] = "proxy"
    public_url: str | None = None
    presign_seconds: int = Field(default=3600, ge=60, le=604_800)


class InteractionSettings(BaseSettings):
    """Polls and reactions (`STAGECAST_INTERACTIONS_*`)."""

    model_config = SettingsConfigDict(env_prefix="STAGECAST_INTERACTIONS_", extra="ignore")

    # A room gets a poll's tallies and its reaction bursts at most once a window.
    window_ms: int = Field(default=250, ge=50, le=5000)
    # How often each node ends the polls whose time ran out (and tells their rooms).
    poll_sweep_seconds: float = Field(default=1.0, gt=0)
    # How long a node trusts what it read of a channel's reaction set and a user's ban.
    reaction_cache_seconds: float = Field(default=5.0, ge=0)
    # The windows and the sweep run in the background; in-process tests run them by hand.
    background: bool = True


class VodSettings(BaseSettings):
    """Recordings: retention, seek previews, their jobs (`STAGECAST_VODS_*`)."""

    model_config = SettingsConfigDict(env_prefix="STAGECAST_VODS_", extra="ignore")

    # VODs older than this many days are removed (their clips kept); 0 keeps them forever.
    # A channel's `vod_retention_days` setting overrides it.
    retention_days: int = Field(default=0, ge=0, le=36500)
    # Seek previews: one thumbnail every `preview_seconds` of the recording (more for long
    # ones: at most `max_previews` thumbnails a VOD), `preview_width` pixels wide.
    preview_seconds: float = Field(default=5, ge=1, le=600)
    max_previews: int = Field(default=400, ge=1, le=2000)
    preview_width: int = Field(default=160, ge=32, le=640)
    # Retention and the seek previews of new VODs run in-process this often (tests run them by
    # hand with `stagecast.vods.jobs.run_once`).
    jobs_enabled: bool = True
    jobs_interval_seconds: float = Field(default=10, gt=0)


class MoneySettings(BaseSettings):
    """Tokens, fees, payments and payouts (`STAGECAST_MONEY_*`)."""

    model_config = SettingsConfigDict(env_prefix="STAGECAST_MONEY_", extra="ignore")

    # Seed 002: 100 tokens = 1 USD.
    tokens_per_unit: int = Field(default=100, ge=1)
    currency: str = "usd"
    # The platform's share of every tip, donation, gift and subscription, in percent.
    platform_fee_percent: int = Field(default=20, ge=0, le=100)
    # Token packages a viewer can buy.
    packages: list[int] = Field(default_factory=lambda: [100, 500, 1000, 2500, 5000, 10000])
    max_tip_tokens: int = Field(default=1_000_000, ge=1)
    min_payout_tokens: int = Field(default=5000, ge=1)
    # "sandbox" completes purchases locally (development); "stripe" or "hyperswitch" are real.
    payment_provider: Literal["sandbox", "stripe", "hyperswitch"] = "sandbox"
    payout_provider: Literal["sandbox", "stripe"] = "sandbox"
    stripe_api_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None  # another API address (a local fake in tests)
    hyperswitch_api_key: str | None = None
    hyperswitch_webhook_secret: str | None = None
    hyperswitch_api_base: str = "https://sandbox.hyperswitch.io"
    # Renewals, payout retries and provider calls left in flight, once a minute in-process
    # (tests run them by hand).
    jobs_enabled: bool = True
    # A provider call whose outcome was never recorded (the server died during it) is taken up
    # again this long after it started, with the same idempotency key. Longer than a call can
    # take: 30 s a request, which the Stripe SDK tries up to three times.
    resume_after_seconds: int = Field(default=300, ge=1)


class AdminSettings(BaseSettings):
    """Audit log, feature flags, maintenance mode (`STAGECAST_ADMIN_*`)."""

    model_config = SettingsConfigDict(env_prefix="STAGECAST_ADMIN_", extra="ignore")

    # Every POST/PUT/PATCH/DELETE is recorded; rows older than the retention are deleted.
    audit_enabled: bool = True
    audit_retention_days: int = Field(default=365, ge=1)
    # Records are written in batches after their responses: at most this often, or sooner
    # when a batch fills; a node keeps at most `audit_buffer_max` unwritten ones.
    audit_flush_seconds: float = Field(default=1.0, gt=0, le=60)
    audit_batch_size: int = Field(default=500, ge=1, le=10_000)
    audit_buffer_max: int = Field(default=20_000, ge=100)
    # How often each node deletes audit rows past their retention.
    retention_interval_seconds: float = Field(default=3600, gt=0)
    # How long a node trusts what it read of the flags and maintenance mode; changes reach
    # every node at once through the cluster bus, this bounds a missed message.
    switches_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # Maintenance answers `Retry-After` with this when the operator gave no end time.
    maintenance_retry_after_seconds: int = Field(default=300, ge=1, le=86_400)
    # The audit writer and the retention job run in the background; in-process tests flush
    # and run them by hand.
    background: bool = True


KycAction = Literal["payouts", "going_live", "tips"]


def _payouts_only() -> list[KycAction]:
    return ["payouts"]


class KycSettings(BaseSettings):
    """Identity verification of performers (`STAGECAST_KYC_*`; docs/trust-and-safety.md)."""

    model_config = SettingsConfigDict(env_prefix="STAGECAST_KYC_", extra="ignore")

    # What needs an approved verification: receiving payouts by default; going live (RTMP,
    # browser; WHIP once built) and receiving tips, donations and gifts when listed.
    required_for: list[KycAction] = Field(default_factory=_payouts_only)
    # Performers must be adults by the date of birth on their verified document.
    minimum_age: int = Field(default=18, ge=1, le=100)
    # Each document file, and how many one submission may carry (front, back, selfie...).
    max_document_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_documents: int = Field(default=3, ge=1, le=10)
    # Documents are deleted this long after the verification is decided (the decision, the
    # legal name and the date of birth stay, encrypted).
    document_retention_days: int = Field(default=90, ge=0)

    def requires(self, action: KycAction) -> bool:
        """Whether `action` needs an approved verification."""
        return action in self.required_for


class PrivacySettings(BaseSettings):
    """Exports, erasure and retention (`STAGECAST_PRIVACY_*`; docs/trust-and-safety.md)."""

    model_config = SettingsConfigDict(env_prefix="STAGECAST_PRIVACY_", extra="ignore")

    # A data export's download link works this long; the archive is deleted after it.
    export_link_hours: int = Field(default=72, ge=1)
    # An erased account's username cannot be registered again for this long.
    username_hold_days: int = Field(default=90, ge=0)
    # Kept this long, then removed by the retention job: sessions' IP addresses (and user
    # agents), ended sessions themselves, and chat messages. 0 keeps them forever.
    session_ip_days: int = Field(default=30, ge=0)
    ended_session_days: int = Field(default=90, ge=0)
    chat_days: int = Field(default=0, ge=0)
    # The retention and export jobs run in-process this often (tests run them by hand).
    jobs_enabled: bool = True
    jobs_interval_seconds: float = Field(default=3600, gt=0)


class ModerationSettings(BaseSettings):
    """Automatic flags of chat (`STAGECAST_MODERATION_*`; docs/trust-and-safety.md).

    Each node watches the messages it receives, in memory (a socket stays on one node), and
    writes a flag into the moderation queue only when one is raised."""

    model_config = SettingsConfigDict(env_prefix="STAGECAST_MODERATION_", extra="ignore")

    flags_enabled: bool = True
    # A flood: more than `flood_messages` messages from one user in one channel within
    # `flood_window_seconds` (the chat rate limit, 5 per 10 s, refuses bursts before that),
    # or the same text `repeat_messages` times within `repeat_window_seconds`.
    flood_messages: int = Field(default=20, ge=2, le=10_000)
    flood_window_seconds: float = Field(default=60, gt=0, le=3600)
    repeat_messages: int = Field(default=3, ge=2, le=1000)
    repeat_window_seconds: float = Field(default=60, gt=0, le=3600)
    # Link spam: more than `link_messages` messages with links within `link_window_seconds`
    # (or any link in a channel whose chat forbids them: that message is refused too).
    link_messages: int = Field(default=3, ge=1, le=1000)
    link_window_seconds: float = Field(default=60, gt=0, le=3600)
    # After a flag of one kind, the same user in the same channel is not flagged for that kind
    # again for this long (one case, not one per message of a flood).
    flag_cooldown_seconds: float = Field(default=60, ge=0, le=86_400)
    # The most users each node keeps recent messages of; the quietest are forgotten first.
    tracked_users: int = Field(default=50_000, ge=100)


class Settings(BaseSettings):
    """Everything an operator can set. Built in `create_app` or the CLI, never at import."""

    model_config = SettingsConfigDict(
        env_prefix="STAGECAST_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    environment: Environment = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    data_dir: Path = Path("var")
    # Where the platform is reached (e.g. https://live.example.com): every absolute address the
    # API hands out is built from it, never from a request's Host header. Required in
    # production, where only its host (and `allowed_hosts`) may be named by a request.
    public_url: str | None = None
    # Host names requests may name (`*.example.com` for subdomains); empty: any in
    # development, the public URL's host in production.
    allowed_hosts: list[str] = Field(default_factory=list)

    database_url: str | None = None
    database_echo: bool = False
    # PostgreSQL connections older than this are replaced at checkout (there is no pre-ping;
    # a request whose connection turns out dead is retried, database_disconnect_retries times).
    database_pool_recycle_seconds: int = Field(default=1800, ge=1)
    database_disconnect_retries: int = Field(default=2, ge=0, le=10)
    # SQLite: writes take turns on one connection per process; one that waited this long for
    # its turn answers 503 DATABASE_BUSY (Retry-After) instead of holding its client forever.
    database_write_wait_seconds: float = Field(default=30, gt=0, le=600)
    # How often the "last used" times of sessions and API keys that authenticated requests
    # are written (batched, never inside the request).
    auth_touch_flush_seconds: float = Field(default=30.0, gt=0, le=3600)
    # How long a node remembers who an access token's session is, so that authenticating a
    # request sends no statement; revocations and changes to the user reach every node at
    # once (accounts/principals.py), this only bounds what a lost Redis message could leave.
    # 0 turns the cache off.
    auth_principal_cache_seconds: float = Field(default=60.0, ge=0, le=900)
    auto_migrate: bool = True
    redis_url: str | None = None
    # Keys in shared stores (Redis) start with this, so that several installs can share one.
    key_prefix: str = "stagecast"

    # Access tokens live 15-60 minutes (issue 2); refresh tokens 30 days, rotated on use.
    access_token_ttl: timedelta = timedelta(minutes=15)
    refresh_token_ttl: timedelta = timedelta(days=30)
    jwt_issuer: str = "stagecast"
    # PEM of an Ed25519 private key; when unset one is generated in data_dir/keys on first run.
    jwt_private_key: str | None = None
    # Server secret for keyed hashes and encryption of values a database leak must not reveal
    # (stream keys). When unset one is generated in data_dir/keys on first run.
    secret_key: str | None = None

    # Where publishers send media; the host defaults to the one the API was reached on.
    rtmp_enabled: bool = True
    rtmp_host: str = "0.0.0.0"  # noqa: S104 - publishers connect from other machines
    # 0 picks a free port (tests); the bound port is then in the app's runtime.
    rtmp_port: int = Field(default=1935, ge=0, le=65535)
    rtmp_public_url: str | None = None
    # What a connection may cost before its publish is authorised by a stream key: anyone can
    # open one, so it may hold little and not for long (docs/media.md, "RTMP limits").
    rtmp_max_connections: int = Field(default=1000, ge=1)
    # Counted per IPv4 address or IPv6 /64; raise it when many encoders share one address.
    rtmp_max_connections_per_ip: int = Field(default=10, ge=1)
    rtmp_handshake_timeout_seconds: float = Field(default=5, gt=0)
    rtmp_idle_timeout_seconds: float = Field(default=10, gt=0)
    rtmp_auth_timeout_seconds: float = Field(default=30, gt=0)
    # The largest message before publish, and all unfinished messages together.
    rtmp_unauthenticated_max_bytes: int = Field(default=32 * 1024, ge=4096, le=1024 * 1024)
    # The largest message (a video frame) of an authorised publisher; unset: two seconds at
    # `media.max_input_bitrate` (5 MB at 20 Mb/s), far above any keyframe at that bitrate.
    rtmp_max_message_bytes: int | None = Field(default=None, ge=64 * 1024, le=0xFFFFFF)

    # Argon2id cost (RFC 9106 "second recommended" profile by default).
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65536, ge=1024)
    password_parallelism: int = Field(default=4, ge=1)

    cors_origins: list[str] = Field(default_factory=list)
    forwarded_allow_ips: str = "127.0.0.1"
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # HTTP connections (stagecast/http_limits.py; docs/operations.md, "Limits"). Idle time
    # between two requests on a connection (uvicorn's keep-alive timeout).
    http_keep_alive_seconds: int = Field(default=5, ge=1, le=600)
    # A request's line and headers must arrive this fast (from the connection opening, or
    # from their first byte on a reused connection), and be at most this large.
    http_header_timeout_seconds: float = Field(default=10, gt=0, le=600)
    http_max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    # The longest a request body may pause while the server waits for it.
    http_body_timeout_seconds: float = Field(default=20, gt=0, le=600)
    # Open connections, websockets included, in all and per client address (an IPv6 /64
    # counts as one; trusted proxies count toward the total only). Keep the total under the
    # process's open-files limit (`ulimit -n`).
    http_max_connections: int = Field(default=10_000, ge=1)
    http_max_connections_per_ip: int = Field(default=500, ge=1)
    metrics_token: str | None = None

    ffmpeg_path: str | None = None
    disk_degraded_bytes: int = 1024**3
    disk_unhealthy_bytes: int = 100 * 1024**2

    # Rooms up to this many viewers hear `viewers:joined`/`viewers:left` for each signed-in
    # viewer; bigger rooms only see the count move (each arrival would go to every viewer).
    presence_events_max_viewers: int = Field(default=1000, ge=0)
    # Pages that are the same for every viewer (browse, a stream's details) are served from
    # memory for this long; viewer counts only move once a second anyway. 0 turns it off.
    directory_cache_seconds: float = Field(default=1.0, ge=0, le=60)

    log_level: str = "INFO"
    log_json: bool | None = None

    rate_limits: RateLimits = Field(default_factory=RateLimits)
    media: MediaSettings = Field(default_factory=MediaSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    vods: VodSettings = Field(default_factory=VodSettings)
    money: MoneySettings = Field(default_factory=MoneySettings)
    interactions: InteractionSettings = Field(default_factory=InteractionSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    kyc: KycSettings = Field(default_factory=KycSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    moderation: ModerationSettings = Field(default_factory=ModerationSettings)

    @field_validator("access_token_ttl")
    @classmethod
    def _access_ttl_in_range(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=15) <= value <= timedelta(minutes=60):
            raise ValueError("access_token_ttl must be between 15 and 60 minutes")
        return value

    @model_validator(mode="after")
    def _production_is_explicit(self) -> Settings:
        # Fail fast on development conveniences that are unsafe in production.
        if self.environment == "production" and "*" in self.cors_origins:
            raise ValueError("cors_origins may not be '*' in production")
        if self.environment == "production" and not self.public_url:
            raise ValueError(
                "public_url must be set in production: addresses handed out are built from it"
            )
        if self.media.store == "s3" and not self.s3.bucket:
            raise ValueError("media store s3 needs STAGECAST_S3_BUCKET")
        if self.public_url and not urlsplit(self.public_url).hostname:
            raise ValueError("public_url must be an absolute URL, e.g. https://live.example.com")
        return self

    @property
    def trusted_hosts(self) -> list[str]:
        """The Host names requests may use; empty means any (development only)."""
        hosts = list(self.allowed_hosts)
        if self.environment == "production" and self.public_url:
            hosts.append(urlsplit(self.public_url).hostname or "")
        return hosts

    @property
    def resolved_database_url(self) -> str:
        """Return the configured database URL, or the embedded SQLite file in data_dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'stagecast.db').resolve()}"

    @property
    def resolved_rtmp_max_message_bytes(self) -> int:
        """The largest RTMP message an authorised publisher may send."""
        if self.rtmp_max_message_bytes is not None:
            return self.rtmp_max_message_bytes
        return min(0xFFFFFF, self.media.max_input_bitrate // 8 * 2)

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def json_logs(self) -> bool:
        if self.log_json is not None:
            return self.log_json
        return self.environment == "production"
