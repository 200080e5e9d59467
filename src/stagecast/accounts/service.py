"""Accounts: registration, sign-in, sessions and refresh rotation, API keys, profiles."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast import search
from stagecast.accounts.models import (
    ApiKey,
    AuthSession,
    HeldUsername,
    RefreshToken,
    Role,
    User,
    UserStatus,
)
from stagecast.accounts.schemas import (
    AdminUserUpdate,
    ApiKeyCreate,
    Preferences,
    PreferencesUpdate,
    RegisterIn,
    UserPrivate,
    UserUpdate,
)
from stagecast.accounts.security import (
    AccessClaims,
    Passwords,
    TokenSigner,
    hash_secret,
    new_secret,
    password_problems,
)
from stagecast.config import Settings
from stagecast.crypto import SecretBox
from stagecast.db.base import utcnow
from stagecast.errors import (
    AppError,
    AuthenticationRequired,
    Conflict,
    InvalidCredentials,
    InvalidToken,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from stagecast.pagination import PageInfo, PageParams, by_id, paginate
from stagecast.patches import load_stored, merge_patch
from stagecast.realtime.bus import publish

REFRESH_TOKEN_PREFIX = "rt_"  # noqa: S105 - a prefix, not a secret
API_KEY_PREFIX = "sc_"


class EmailTaken(Conflict):
    code, title = "EMAIL_TAKEN", "An account with this email already exists"


class UsernameTaken(Conflict):
    code, title = "USERNAME_TAKEN", "This username is taken"


class AccountSuspended(PermissionDenied):
    code, title = "ACCOUNT_SUSPENDED", "This account is suspended"


class UserNotFound(NotFound):
    code, title = "USER_NOT_FOUND", "User not found"


class SessionRevoked(InvalidToken):
    code, title = "SESSION_REVOKED", "This session has ended; sign in again"


class RefreshTokenReused(InvalidToken):
    code, title = "REFRESH_TOKEN_REUSED", "Refresh token already used; the session was revoked"


class InvalidApiKey(InvalidToken):
    code, title = "INVALID_API_KEY", "The API key is invalid, expired or revoked"


IP_PURPOSE = "session-ip"


def seal_ip(box: SecretBox, ip: str | None) -> str | None:
    """A client address as sessions store it: encrypted, so a database leak does not list
    where everyone signs in from (docs/trust-and-safety.md, "PII at rest")."""
    return box.encrypt(IP_PURPOSE, ip) if ip else None


def open_ip(box: SecretBox, sealed: str | None) -> str | None:
    """The address `seal_ip` stored (None for one stored before it, or under another secret)."""
    return box.decrypt(IP_PURPOSE, sealed) if sealed else None


BIRTH_DATE_PURPOSE = "date-of-birth"


def seal_birth_date(box: SecretBox, born: date | None) -> str | None:
    """A date of birth as the profile stores it: encrypted, like the KYC record's."""
    return box.encrypt(BIRTH_DATE_PURPOSE, born.isoformat()) if born else None


def open_birth_date(box: SecretBox, sealed: str | None) -> date | None:
    """The date `seal_birth_date` stored (None when unset, or sealed under another secret)."""
    raw = box.decrypt(BIRTH_DATE_PURPOSE, sealed) if sealed else None
    return date.fromisoformat(raw) if raw else None


def private_profile(box: SecretBox, user: User) -> UserPrivate:
    """The profile as its owner or an admin sees it, the date of birth unsealed."""
    return UserPrivate.model_validate(user).model_copy(
        update={"date_of_birth": open_birth_date(box, user.date_of_birth_encrypted)}
    )


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    session_id: uuid.UUID
    user: User


def normalize_email(raw: str) -> str:
    """Return the canonical (lower-case, IDNA-normalised) form of an email address."""
    try:
        return validate_email(raw, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(
            "The email address is not valid",
            errors=[{"field": "email", "in": "body", "message": str(exc), "type": "email"}],
        ) from exc


def _field_error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "in": "body", "message": message, "type": "value_error"}


async def _ensure_unique(
    session: AsyncSession,
    *,
    email: str | None = None,
    username: str | None = None,
    exclude: uuid.UUID | None = None,
) -> None:
    if email is not None:
        query = select(User.id).where(User.email == email)
        if exclude is not None:
            query = query.where(User.id != exclude)
        if await session.scalar(query) is not None:
            raise EmailTaken()
    if username is not None:
        query = select(User.id).where(User.username_key == username.lower())
        if exclude is not None:
            query = query.where(User.id != exclude)
        if await session.scalar(query) is not None:
            raise UsernameTaken()
        # An erased account's name is held back for a while (privacy.service.erase).
        held = await session.scalar(
            select(HeldUsername.held_until).where(HeldUsername.username_key == username.lower())
        )
        if held is not None and held > utcnow():
            raise UsernameTaken("This username belonged to an erased account; it is held back")


async def _flush_unique(session: AsyncSession) -> None:
    # A concurrent registration can pass the checks above; the unique indexes decide.
    try:
        await session.flush()
    except IntegrityError as exc:
        message = str(exc.orig).lower()
        raise (UsernameTaken() if "username" in message else EmailTaken()) from exc


async def hash_new_password(
    passwords: Passwords, *, password: str, username: str, email: str
) -> str:
    """Check the password rules and hash it (slow by design: call it outside a transaction)."""
    problems = password_problems(password, username=username, email=normalize_email(email))
    if problems:
        raise ValidationFailed(
            "The password is too weak",
            errors=[_field_error("password", f"Password {p}") for p in problems],
        )
    return await passwords.hash(password)


async def create_user(
    session: AsyncSession,
    box: SecretBox,
    *,
    data: RegisterIn,
    password_hash: str,
    role: Role = Role.VIEWER,
) -> User:
    """Create an account (its password already checked and hashed) if the names are free."""
    email = normalize_email(str(data.email))
    await _ensure_unique(session, email=email, username=data.username)
    user = User(
        email=email,
        username=data.username,
        username_key=data.username.lower(),
        display_name=data.display_name or data.username,
        country=data.country,
        date_of_birth_encrypted=seal_birth_date(box, data.date_of_birth),
        role=role.value,
        password_hash=password_hash,
        preferences={},
    )
    session.add(user)
    await _flush_unique(session)
    await _index_user(session, user)
    return user


async def _index_user(session: AsyncSession, user: User) -> None:
    await search.index_document(
        session,
        kind="user",
        ref_id=user.id,
        title=f"{user.display_name} {user.username}",
        body=user.bio or "",
    )


async def find_login_candidate(
    session: AsyncSession, *, email: str | None, username: str | None
) -> User | None:
    """The account an email or username names, if any."""
    if email is not None:
        try:
            return await session.scalar(select(User).where(User.email == normalize_email(email)))
        except ValidationFailed:
            return None
    return await session.scalar(select(User).where(User.username_key == (username or "").lower()))


async def verify_credentials(
    passwords: Passwords, user: User | None, password: str
) -> tuple[User, str | None]:
    """Check a password for a candidate account, outside any transaction.

    A missing account and a wrong password raise the same error after the same Argon2 work.
    Returns the user and, when the stored hash used outdated cost parameters, a fresh one.
    """
    valid = await passwords.verify(user.password_hash if user else None, password)
    if user is None or not valid:
        raise InvalidCredentials()
    if not user.is_active:
        raise AccountSuspended()
    if passwords.needs_rehash(user.password_hash):
        return user, await passwords.hash(password)
    return user, None


async def change_password(
    session: AsyncSession, *, user: User, password_hash: str, keep: uuid.UUID | None
) -> int:
    """Store a new password hash (checked and hashed by the caller, outside the
    transaction) and sign every other session out; return how many were."""
    user.password_hash = password_hash
    await session.flush()
    return await end_all_sessions(session, user_id=user.id, reason="password_changed", keep=keep)


async def _issue_refresh(
    session: AsyncSession, *, auth_session: AuthSession
) -> tuple[str, datetime]:
    raw = new_secret(REFRESH_TOKEN_PREFIX)
    session.add(
        RefreshToken(
            session_id=auth_session.id,
            token_hash=hash_secret(raw),
            expires_at=auth_session.expires_at,
        )
    )
    await session.flush()
    return raw, auth_session.expires_at


async def open_session(
    session: AsyncSession,
    tokens: TokenSigner,
    settings: Settings,
    *,
    user: User,
    user_agent: str | None,
    ip: str | None,
    new_password_hash: str | None = None,
) -> IssuedTokens:
    """Start a signed-in session for a user and issue its first token pair."""
    now = utcnow()
    if new_password_hash is not None:
        user.password_hash = new_password_hash
    auth_session = AuthSession(
        user_id=user.id,
        created_at=now,
        last_used_at=now,
        expires_at=now + settings.refresh_token_ttl,
        user_agent=(user_agent or "")[:512] or None,
        ip=ip,
    )
    session.add(auth_session)
    await session.flush()
    refresh, refresh_expires = await _issue_refresh(session, auth_session=auth_session)
    access, access_expires = tokens.issue_access(
        user_id=user.id, session_id=auth_session.id, role=user.role
    )
    return IssuedTokens(access, access_expires, refresh, refresh_expires, auth_session.id, user)


AUTH_REVOKED = "auth:revoked"
# A user's row changed (any column): nodes drop what they cached of it (accounts/principals.py).
USER_CHANGED = "user:changed"


def _announce_revocation(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID | None,
    reason: str,
    keep: uuid.UUID | None = None,
) -> None:
    """Once the revocation commits, every node drops what it holds for it (open sockets,
    cached principals): `session_id` None means every session of the user but `keep`."""
    publish(
        session,
        AUTH_REVOKED,
        {
            "user_id": str(user_id),
            "session_id": str(session_id) if session_id else None,
            "keep_session_id": str(keep) if keep else None,
            "reason": reason,
        },
        rooms=(),
    )


async def _revoke(session: AsyncSession, auth_session: AuthSession, reason: str) -> None:
    if auth_session.revoked_at is None:
        auth_session.revoked_at = utcnow()
        auth_session.revoke_reason = reason
        _announce_revocation(
            session, user_id=auth_session.user_id, session_id=auth_session.id, reason=reason
        )


async def rotate_refresh_token(
    session: AsyncSession,
    tokens: TokenSigner,
    *,
    raw_token: str,
    user_agent: str | None,
    ip: str | None,
) -> IssuedTokens | AppError:
    """Exchange a refresh token for a new pair.

    A token that was already used means it leaked (or a client raced itself): the whole
    session is revoked. That revocation must be committed, so the error is returned for the
    caller to raise after the transaction, not raised here.
    """
    token = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_secret(raw_token))
    )
    if token is None:
        return InvalidToken("Unknown refresh token")
    auth_session = await session.get_one(AuthSession, token.session_id)
    now = utcnow()
    if token.used_at is not None:
        await _revoke(session, auth_session, "refresh_token_reuse")
        await session.flush()
        return RefreshTokenReused()
    if auth_session.revoked_at is not None:
        return SessionRevoked()
    if token.expires_at <= now or auth_session.expires_at <= now:
        return InvalidToken("The refresh token has expired")
    user = await session.get_one(User, auth_session.user_id)
    if not user.is_active:
        return AccountSuspended()
    # Claim the token atomically so that two concurrent refreshes cannot both succeed.
    claimed = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        await _revoke(session, auth_session, "refresh_token_reuse")
        await session.flush()
        return RefreshTokenReused()
    auth_session.last_used_at = now
    if user_agent:
        auth_session.user_agent = user_agent[:512]
    auth_session.ip = ip or auth_session.ip
    refresh, refresh_expires = await _issue_refresh(session, auth_session=auth_session)
    access, access_expires = tokens.issue_access(
        user_id=user.id, session_id=auth_session.id, role=user.role
    )
    return IssuedTokens(access, access_expires, refresh, refresh_expires, auth_session.id, user)


async def end_session_of_refresh_token(session: AsyncSession, raw_token: str) -> None:
    """Sign out the session a refresh token belongs to (unknown tokens are ignored)."""
    token = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_secret(raw_token))
    )
    auth_session = await session.get(AuthSession, token.session_id) if token else None
    if auth_session is not None:
        await _revoke(session, auth_session, "logout")
        await session.flush()


# Built once: SQLAlchemy memoises a statement's cache key on the statement object, so a
# hot-path query made per request pays for building it and its key each time (~0.4 ms here).
_ACCESS_QUERY = (
    select(User, AuthSession)
    .join(AuthSession, AuthSession.user_id == User.id)
    .where(User.id == bindparam("user_id"), AuthSession.id == bindparam("session_id"))
)


async def resolve_access(session: AsyncSession, claims: AccessClaims) -> tuple[User, AuthSession]:
    """Load the user and live session behind a verified access token, in one statement and
    without writing (the caller notes the use: accounts/touches.py)."""
    row = (
        await session.execute(
            _ACCESS_QUERY, {"user_id": claims.user_id, "session_id": claims.session_id}
        )
    ).one_or_none()
    if row is None:
        raise InvalidToken("The token's session does not exist")
    user, auth_session = row
    now = utcnow()
    if auth_session.revoked_at is not None or auth_session.expires_at <= now:
        raise SessionRevoked()
    if not user.is_active:
        raise AccountSuspended()
    return user, auth_session


async def end_session(session: AsyncSession, *, user: User, session_id: uuid.UUID) -> None:
    """Sign one of the user's sessions out."""
    auth_session = await session.get(AuthSession, session_id)
    if auth_session is None or auth_session.user_id != user.id:
        raise NotFound("No such session")
    await _revoke(session, auth_session, "logout")
    await session.flush()


async def end_all_sessions(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    reason: str,
    keep: uuid.UUID | None = None,
) -> int:
    """Sign every session of a user out (but `keep`); return how many were active."""
    query = update(AuthSession).where(
        AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
    )
    if keep is not None:
        query = query.where(AuthSession.id != keep)
    result = await session.execute(
        query.values(revoked_at=utcnow(), revoke_reason=reason).execution_options(
            synchronize_session=False
        )
    )
    _announce_revocation(session, user_id=user_id, session_id=None, reason=reason, keep=keep)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def list_sessions(
    session: AsyncSession, *, user_id: uuid.UUID, params: PageParams
) -> tuple[list[AuthSession], PageInfo]:
    query = select(AuthSession).where(
        AuthSession.user_id == user_id,
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > utcnow(),
    )
    return await paginate(session, query, keys=by_id(AuthSession.id), params=params)


async def create_api_key(
    session: AsyncSession, *, user: User, data: ApiKeyCreate
) -> tuple[ApiKey, str]:
    """Create an API key; the raw key is returned here and never again."""
    raw = new_secret(API_KEY_PREFIX)
    expires = utcnow() + timedelta(days=data.expires_in_days) if data.expires_in_days else None
    key = ApiKey(
        user_id=user.id,
        name=data.name,
        prefix=raw[:11],
        key_hash=hash_secret(raw),
        scopes=list(data.scopes),
        expires_at=expires,
    )
    session.add(key)
    await session.flush()
    return key, raw


async def list_api_keys(
    session: AsyncSession, *, user_id: uuid.UUID, params: PageParams
) -> tuple[list[ApiKey], PageInfo]:
    query = select(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
    return await paginate(session, query, keys=by_id(ApiKey.id), params=params)


async def revoke_api_key(session: AsyncSession, *, user: User, key_id: uuid.UUID) -> None:
    key = await session.get(ApiKey, key_id)
    if key is None or key.user_id != user.id or key.revoked_at is not None:
        raise NotFound("No such API key")
    key.revoked_at = utcnow()
    await session.flush()


async def resolve_api_key(session: AsyncSession, raw: str) -> tuple[User, ApiKey]:
    """Load the user and key behind a raw `X-API-Key` value (one statement, no write)."""
    row = (
        await session.execute(
            select(User, ApiKey)
            .join(ApiKey, ApiKey.user_id == User.id)
            .where(ApiKey.key_hash == hash_secret(raw))
        )
    ).one_or_none()
    now = utcnow()
    if row is None:
        raise InvalidApiKey()
    user, key = row
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        raise InvalidApiKey()
    if not user.is_active:
        raise AccountSuspended()
    return user, key


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None or user.status == UserStatus.DELETED.value:
        raise UserNotFound()
    return user


async def get_user_by_username(session: AsyncSession, username: str) -> User:
    user = await session.scalar(select(User).where(User.username_key == username.lower()))
    if user is None or user.status == UserStatus.DELETED.value:
        raise UserNotFound()
    return user


async def get_user_by_ref(session: AsyncSession, ref: str) -> User:
    """A user by id or by username."""
    try:
        user_id = uuid.UUID(ref)
    except ValueError:
        return await get_user_by_username(session, ref)
    return await get_user(session, user_id)


async def get_user_for(session: AsyncSession, ref: str, viewer: User | None) -> User:
    """A user by id, username, or `me` (the caller, who must then be signed in)."""
    if ref == "me":
        if viewer is None:
            raise AuthenticationRequired()
        return await get_user(session, viewer.id)
    return await get_user_by_ref(session, ref)


def ensure_can_manage(actor: User, target: User) -> None:
    """Only the user themself or an admin may change or see a user's private data."""
    if actor.id != target.id and actor.role_enum is not Role.ADMIN:
        raise PermissionDenied("You can only change your own account")


async def update_user(
    session: AsyncSession, box: SecretBox, *, user: User, data: UserUpdate
) -> User:
    """Apply a profile patch; only the fields sent change, `null` clears optional ones."""
    changes: dict[str, Any] = data.model_dump(exclude_unset=True)
    if "username" in changes and changes["username"].lower() != user.username_key:
        await _ensure_unique(session, username=changes["username"], exclude=user.id)
    if "username" in changes:
        user.username = changes["username"]
        user.username_key = changes["username"].lower()
    for name in ("display_name", "bio", "country"):
        if name in changes:
            setattr(user, name, changes[name])
    if "date_of_birth" in changes:
        user.date_of_birth_encrypted = seal_birth_date(box, changes["date_of_birth"])
    if "avatar_url" in changes:
        user.avatar_url = str(changes["avatar_url"]) if changes["avatar_url"] else None
    await _flush_unique(session)
    await _index_user(session, user)
    return user


def preferences_of(user: User) -> Preferences:
    """The user's preferences; stored values that no longer validate read as defaults."""
    return load_stored(Preferences, user.preferences or {}, what=f"user {user.id} preferences")


async def update_preferences(
    session: AsyncSession, *, user: User, data: PreferencesUpdate
) -> Preferences:
    """Apply a merge patch: a value replaces, `null` resets the preference to its default."""
    merged = merge_patch(preferences_of(user), data.model_dump(exclude_unset=True))
    user.preferences = merged.model_dump()
    await session.flush()
    return merged


async def list_users(
    session: AsyncSession,
    *,
    params: PageParams,
    role: Role | None = None,
    status: UserStatus | None = None,
    query_text: str | None = None,
) -> tuple[list[User], PageInfo]:
    query = select(User)
    if role is not None:
        query = query.where(User.role == role.value)
    if status is not None:
        query = query.where(User.status == status.value)
    if query_text:
        # A literal fragment: "_" and "%" are characters here, not wildcards.
        fragment = query_text.lower()
        query = query.where(
            User.username_key.contains(fragment, autoescape=True)
            | func.lower(User.email).contains(fragment, autoescape=True)
        )
    return await paginate(session, query, keys=by_id(User.id), params=params)


async def admin_update_user(
    session: AsyncSession, *, actor: User, user_id: uuid.UUID, data: AdminUserUpdate
) -> User:
    """Change a user's role or status; suspending signs them out everywhere."""
    user = await get_user(session, user_id)
    if user.id == actor.id and (
        data.role not in (None, Role.ADMIN) or data.status in ("suspended", "banned")
    ):
        raise PermissionDenied("Admins cannot demote or suspend themselves")
    if data.role is not None:
        user.role = data.role.value
    if data.status is not None:
        user.status = data.status
        if data.status in (UserStatus.SUSPENDED.value, UserStatus.BANNED.value):
            await end_all_sessions(session, user_id=user.id, reason=data.status)
    await session.flush()
    return user
