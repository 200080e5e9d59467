"""Settings, read from `STAGECAST_*` environment variables (or a `.env` file)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

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
    # Renewals and payout retries, once a minute in-process (tests run them by hand).
    jobs_enabled: bool = True


class Settings(BaseSettings):
    """Everything an operator can set. Built in `create_app` or the CLI, never at import."""

    model_config = SettingsConfigDict(
        env_prefix="STAGECAST_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    environment: Environment = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    data_dir: Path = Path("var")
    public_url: str | None = None

    database_url: str | None = None
    database_echo: bool = False
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

    # Argon2id cost (RFC 9106 "second recommended" profile by default).
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65536, ge=1024)
    password_parallelism: int = Field(default=4, ge=1)

    cors_origins: list[str] = Field(default_factory=list)
    forwarded_allow_ips: str = "127.0.0.1"
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    metrics_token: str | None = None

    ffmpeg_path: str | None = None
    disk_degraded_bytes: int = 1024**3
    disk_unhealthy_bytes: int = 100 * 1024**2

    # Pages that are the same for every viewer (browse, a stream's details) are served from
    # memory for this long; viewer counts only move once a second anyway. 0 turns it off.
    directory_cache_seconds: float = Field(default=1.0, ge=0, le=60)

    log_level: str = "INFO"
    log_json: bool | None = None

    rate_limits: RateLimits = Field(default_factory=RateLimits)
    media: MediaSettings = Field(default_factory=MediaSettings)
    money: MoneySettings = Field(default_factory=MoneySettings)

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
        return self

    @property
    def resolved_database_url(self) -> str:
        """Return the configured database URL, or the embedded SQLite file in data_dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'stagecast.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def json_logs(self) -> bool:
        if self.log_json is not None:
            return self.log_json
        return self.environment == "production"
