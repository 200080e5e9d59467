"""What the accounts API takes and returns."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Literal

import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    StringConstraints,
    WithJsonSchema,
    computed_field,
    field_validator,
    model_validator,
)

from stagecast.accounts.models import Role, UserStatus
from stagecast.db.base import utcnow

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_]{3,25}$")
MINIMUM_AGE_YEARS = 13
ApiKeyScope = Literal["read", "write"]


class Input(BaseModel):
    """Base of request bodies: unknown fields are an error, strings are trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _username(value: str) -> str:
    if not USERNAME_PATTERN.fullmatch(value):
        raise ValueError("3-25 characters: letters, digits and underscores")
    return value


def _country(value: str) -> str:
    value = value.upper()
    if pycountry.countries.get(alpha_2=value) is None:
        raise ValueError("must be an ISO 3166-1 alpha-2 country code")
    return value


def _date_of_birth(value: date) -> date:
    today = utcnow().date()
    if value > today or value.year < 1900:
        raise ValueError("must be a real date in the past")
    age = today.year - value.year - ((today.month, today.day) < (value.month, value.day))
    if age < MINIMUM_AGE_YEARS:
        raise ValueError(f"you must be at least {MINIMUM_AGE_YEARS} years old")
    return value


def _https_url(value: HttpUrl) -> HttpUrl:
    if value.scheme != "https":
        raise ValueError("must be an https URL")
    return value


# Seed 002 calls creators "performers": the name is taken as input, we answer ours.
ROLE_ALIASES = {"performer": Role.CREATOR}


def _role_alias(value: object) -> object:
    return ROLE_ALIASES.get(value.lower(), value) if isinstance(value, str) else value


RoleIn = Annotated[
    Role,
    BeforeValidator(_role_alias),
    WithJsonSchema({"type": "string", "enum": [*(r.value for r in Role), *ROLE_ALIASES]}),
]
Username = Annotated[str, AfterValidator(_username)]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Bio = Annotated[str, StringConstraints(max_length=500)]
Country = Annotated[str, StringConstraints(min_length=2, max_length=2), AfterValidator(_country)]
DateOfBirth = Annotated[date, AfterValidator(_date_of_birth)]
AvatarUrl = Annotated[HttpUrl, AfterValidator(_https_url)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024, strip_whitespace=False)]


class RegisterIn(Input):
    username: Username
    email: EmailStr = Field(max_length=320)
    password: Password
    display_name: DisplayName | None = None
    country: Country | None = None
    date_of_birth: DateOfBirth | None = None


class PasswordChangeIn(Input):
    current_password: Password
    new_password: Password


class LoginIn(Input):
    """Sign in with an email address or a username."""

    email: Annotated[str, StringConstraints(min_length=1, max_length=320)] | None = None
    username: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    password: Password

    @model_validator(mode="after")
    def _one_identifier(self) -> LoginIn:
        if (self.email is None) == (self.username is None):
            raise ValueError("give either email or username")
        return self


class RefreshIn(Input):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None


class UserPublic(Output):
    id: uuid.UUID
    username: str
    display_name: str
    bio: str | None
    avatar_url: str | None
    role: Role
    created_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def profile_image_url(self) -> str | None:
        """Seed 002's name for `avatar_url`."""
        return self.avatar_url


class UserPrivate(UserPublic):
    """The profile as its owner (or an admin) sees it."""

    email: str
    email_verified: bool
    country: str | None
    # Stored sealed: `accounts.service.private_profile` fills it in.
    date_of_birth: date | None = None
    status: UserStatus
    updated_at: datetime


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - OAuth token type
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    session_id: uuid.UUID
    user: UserPrivate


class UserUpdate(Input):
    """Profile changes; `null` clears an optional field."""

    username: Username | None = None
    display_name: DisplayName | None = None
    bio: Bio | None = None
    avatar_url: AvatarUrl | None = None
    profile_image_url: AvatarUrl | None = Field(default=None, description="seed 002's avatar_url")
    country: Country | None = None
    date_of_birth: DateOfBirth | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> UserUpdate:
        for name in ("username", "display_name"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be cleared")
        return self

    @model_validator(mode="after")
    def _profile_image_is_the_avatar(self) -> UserUpdate:
        if "profile_image_url" not in self.model_fields_set:
            return self
        if "avatar_url" in self.model_fields_set and self.avatar_url != self.profile_image_url:
            raise ValueError("avatar_url and profile_image_url are one field: send one of them")
        self.avatar_url = self.profile_image_url
        self.model_fields_set.add("avatar_url")
        return self


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")] = "en"
    theme: Literal["system", "light", "dark"] = "system"
    email_notifications: bool = True
    live_notifications: bool = True
    show_mature_content: bool = False
    chat_timestamps: bool = False
    autoplay: bool = True
    low_latency_playback: bool = True


class PreferencesUpdate(Input):
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")] | None = None
    theme: Literal["system", "light", "dark"] | None = None
    email_notifications: bool | None = None
    live_notifications: bool | None = None
    show_mature_content: bool | None = None
    chat_timestamps: bool | None = None
    autoplay: bool | None = None
    low_latency_playback: bool | None = None


class SessionOut(Output):
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool = False


class SessionLogoutIn(Input):
    session_id: uuid.UUID | None = Field(
        default=None, description="The session to end; the current one when omitted"
    )


def _default_scopes() -> list[ApiKeyScope]:
    return ["read"]


class ApiKeyCreate(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    scopes: list[ApiKeyScope] = Field(default_factory=_default_scopes, min_length=1)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)

    @field_validator("scopes")
    @classmethod
    def _unique(cls, value: list[ApiKeyScope]) -> list[ApiKeyScope]:
        return sorted(set(value))


class ApiKeyOut(Output):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The raw key; shown once, store it now")


class AdminUserUpdate(Input):
    role: RoleIn | None = None
    status: Literal["active", "suspended", "banned"] | None = None
