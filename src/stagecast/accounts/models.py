"""Users, their login sessions, refresh tokens and API keys."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from stagecast.db.base import Base, JSONType, TimestampMixin, new_id, utcnow


class Role(enum.StrEnum):
    """Platform roles, lowest first; each includes what the ones before it may do."""

    VIEWER = "viewer"
    CREATOR = "creator"
    MODERATOR = "moderator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


class UserStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    BANNED = "banned"  # by a moderation decision; like a suspension, signed out and kept out
    DELETED = "deleted"


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # Shown as typed; `username_key` (lower case) makes uniqueness case-insensitive.
    username: Mapped[str] = mapped_column(String(32))
    username_key: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    bio: Mapped[str | None] = mapped_column(Text)
    avatar_url: Mapped[str | None] = mapped_column(String(2048))
    country: Mapped[str | None] = mapped_column(String(2))
    # Fernet-encrypted (accounts.service.seal_birth_date): a database leak does not date anyone.
    date_of_birth_encrypted: Mapped[str | None] = mapped_column(Text)
    # Indexed: the admin list filters (and counts) by them.
    role: Mapped[str] = mapped_column(String(16), default=Role.VIEWER.value, index=True)
    status: Mapped[str] = mapped_column(String(16), default=UserStatus.ACTIVE.value, index=True)
    email_verified: Mapped[bool] = mapped_column(default=False)
    password_hash: Mapped[str] = mapped_column(String(255))
    preferences: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # CCPA "Do Not Sell or Share" (POST /users/me/privacy/opt-out; a request's `Sec-GPC: 1`
    # counts too): what providers are given is cut to what the service needs.
    do_not_sell: Mapped[bool] = mapped_column(default=False)
    # Set by an erasure: the row stays (the ledger's entries are attributed to it), emptied.
    erased_at: Mapped[datetime | None]

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    @property
    def is_active(self) -> bool:
        return self.status == UserStatus.ACTIVE.value


class AuthSession(Base):
    """One signed-in device: the refresh-token family and what we know of the client."""

    __tablename__ = "auth_sessions"
    __table_args__ = (Index("ix_auth_sessions_user_active", "user_id", "revoked_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoke_reason: Mapped[str | None] = mapped_column(String(32))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    # Fernet-encrypted (accounts.service.seal_ip); removed by the retention job.
    ip: Mapped[str | None] = mapped_column(String(255))

    user: Mapped[User] = relationship(lazy="raise")


class RefreshToken(Base):
    """A refresh token, stored as a hash; `used_at` set means it was rotated away."""

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class ApiKey(Base):
    """A long-lived key for scripts and bots, sent as `X-API-Key`; stored as a hash."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(24))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class HeldUsername(Base):
    """A username an erased account gave up: nobody may take it until `held_until`, so that
    no one can pass for the person who left."""

    __tablename__ = "held_usernames"

    username_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    held_until: Mapped[datetime]
