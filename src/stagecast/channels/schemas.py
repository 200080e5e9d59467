"""What the channels, follows and discovery API takes and returns."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from stagecast.accounts.schemas import AvatarUrl, Input, Output, UserPublic
from stagecast.chat.emotes import EMOTES

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{2,31}$")
# Paths of the web app and API, and names that would impersonate the platform.
RESERVED_SLUGS = frozenset(
    {
        "about",
        "admin",
        "administrator",
        "api",
        "app",
        "assets",
        "auth",
        "browse",
        "categories",
        "channel",
        "channels",
        "clips",
        "dashboard",
        "directory",
        "docs",
        "download",
        "explore",
        "following",
        "health",
        "healthz",
        "help",
        "home",
        "inventory",
        "jobs",
        "legal",
        "live",
        "livestream",
        "leaderboard",
        "leaderboards",
        "login",
        "logout",
        "me",
        "metrics",
        "moderator",
        "new",
        "notifications",
        "null",
        "openapi",
        "payouts",
        "privacy",
        "readyz",
        "recommended",
        "register",
        "root",
        "search",
        "security",
        "settings",
        "signin",
        "signup",
        "socket.io",
        "staff",
        "stagecast",
        "static",
        "status",
        "streams",
        "subscriptions",
        "support",
        "system",
        "terms",
        "tournament",
        "tournaments",
        "undefined",
        "user",
        "users",
        "vod",
        "vods",
        "wallet",
        "well-known",
        "www",
    }
)
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Z]{2})?$"


def _slug(value: str) -> str:
    value = value.lower()
    if not SLUG_PATTERN.fullmatch(value):
        raise ValueError(
            "3-32 characters: letters, digits, '-' and '_', starting with a letter or digit"
        )
    if value in RESERVED_SLUGS:
        raise ValueError("this name is reserved")
    return value


Slug = Annotated[str, AfterValidator(_slug)]
ChannelName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Description = Annotated[str, StringConstraints(max_length=1000)]
Language = Annotated[str, StringConstraints(pattern=LANGUAGE_PATTERN)]
CategorySlug = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ChatRule = Annotated[str, StringConstraints(min_length=1, max_length=200)]
BlockedTerm = Annotated[str, StringConstraints(min_length=1, max_length=100, to_lower=True)]


class ChannelCreate(Input):
    slug: Slug
    name: ChannelName | None = None
    description: Description | None = None
    category: CategorySlug | None = None
    language: Language = "en"
    is_mature: bool = False


class ChannelUpdate(Input):
    slug: Slug | None = None
    name: ChannelName | None = None
    description: Description | None = None
    category: CategorySlug | None = None
    language: Language | None = None
    is_mature: bool | None = None
    avatar_url: AvatarUrl | None = None
    banner_url: AvatarUrl | None = None


class ChannelOwner(Output):
    id: uuid.UUID
    username: str
    display_name: str
    avatar_url: str | None


class ChannelOut(Output):
    id: uuid.UUID
    slug: str
    name: str
    description: str | None
    category: str | None
    language: str
    is_mature: bool
    avatar_url: str | None
    banner_url: str | None
    follower_count: int
    owner: ChannelOwner
    is_live: bool = False
    live_stream_id: uuid.UUID | None = None
    created_at: datetime


class ChatSettings(BaseModel):
    """Chat modes and rules; moderators change the modes live (`chat:mode`)."""

    rules: list[ChatRule] = Field(default_factory=list, max_length=20)
    slow_mode_seconds: int = Field(default=0, ge=0, le=3600)
    followers_only_minutes: int | None = Field(default=None, ge=0, le=60 * 24 * 90)
    subscribers_only: bool = False
    emote_only: bool = False
    blocked_terms: list[BlockedTerm] = Field(default_factory=list, max_length=200)
    # Off: viewers' messages with links are refused (and flagged as link spam).
    allow_links: bool = True


def _emote_code(value: str) -> str:
    if value not in EMOTES:
        raise ValueError(f"not an emote of the platform's list ({', '.join(EMOTES)})")
    return value


EmoteCode = Annotated[str, AfterValidator(_emote_code)]


class ReactionSettings(BaseModel):
    """What viewers may react with; an empty `allowed` means the platform's emote list."""

    enabled: bool = True
    allowed: list[EmoteCode] = Field(default_factory=list, max_length=50)


class ReactionSettingsUpdate(Input):
    enabled: bool | None = None
    allowed: list[EmoteCode] | None = Field(default=None, max_length=50)


class ClipSettings(BaseModel):
    """Who may clip the channel's streams, and how often one person may."""

    allowed: Literal["signed_in", "followers", "subscribers", "nobody"] = "signed_in"
    per_user_per_hour: int = Field(default=20, ge=1, le=1000)


class ChannelSettings(BaseModel):
    title_template: Annotated[str, StringConstraints(max_length=140)] = "{channel} is live"
    category: str | None = None
    language: str = "en"
    is_mature: bool = False
    chat: ChatSettings = Field(default_factory=ChatSettings)
    reconnect_window_seconds: int = Field(default=30, ge=0, le=600)
    recording_enabled: bool = True
    latency_mode: Literal["low", "standard"] = "low"
    reactions: ReactionSettings = Field(default_factory=ReactionSettings)
    # Days a recording is kept (its clips stay); None: the platform's default, 0: forever.
    vod_retention_days: int | None = Field(default=None, ge=0, le=36500)
    clips: ClipSettings = Field(default_factory=ClipSettings)


class ChatSettingsUpdate(Input):
    rules: list[ChatRule] | None = Field(default=None, max_length=20)
    slow_mode_seconds: int | None = Field(default=None, ge=0, le=3600)
    followers_only_minutes: int | None = Field(default=None, ge=0, le=60 * 24 * 90)
    subscribers_only: bool | None = None
    emote_only: bool | None = None
    blocked_terms: list[BlockedTerm] | None = Field(default=None, max_length=200)
    allow_links: bool | None = None


class ClipSettingsUpdate(Input):
    allowed: Literal["signed_in", "followers", "subscribers", "nobody"] | None = None
    per_user_per_hour: int | None = Field(default=None, ge=1, le=1000)


class ChannelSettingsUpdate(Input):
    title_template: Annotated[str, StringConstraints(min_length=1, max_length=140)] | None = None
    category: CategorySlug | None = None
    language: Language | None = None
    is_mature: bool | None = None
    chat: ChatSettingsUpdate | None = None
    reconnect_window_seconds: int | None = Field(default=None, ge=0, le=600)
    recording_enabled: bool | None = None
    latency_mode: Literal["low", "standard"] | None = None
    reactions: ReactionSettingsUpdate | None = None
    vod_retention_days: int | None = Field(default=None, ge=0, le=36500)
    clips: ClipSettingsUpdate | None = None


class FollowState(BaseModel):
    following: bool
    follower_count: int
    followed_at: datetime | None = None


class Follower(BaseModel):
    user: UserPublic
    followed_at: datetime


class FollowedChannel(BaseModel):
    channel: ChannelOut
    followed_at: datetime


class CategoryOut(Output):
    slug: str
    name: str
    live_streams: int = 0
    viewers: int = 0


class CategoryCreate(Input):
    slug: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")]
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class TagSuggestions(BaseModel):
    suggestions: list[str]


class UserStats(BaseModel):
    user_id: uuid.UUID
    followers: int
    following_users: int
    following_channels: int
    channel_followers: int
    streams: int
    hours_streamed: float
    peak_viewers: int
    member_since: datetime


class FollowerPoint(BaseModel):
    date: date
    new_followers: int
    total_followers: int


class StreamStatsRow(BaseModel):
    stream_id: uuid.UUID
    title: str
    started_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int
    peak_viewers: int
    average_viewers: float


class ChannelAnalytics(BaseModel):
    channel_id: uuid.UUID
    follower_count: int
    followers_over_time: list[FollowerPoint]
    streams: int
    hours_streamed: float
    peak_viewers: int
    average_viewers: float
    recent_streams: list[StreamStatsRow]
