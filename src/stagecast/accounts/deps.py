"""Who is calling: `CurrentUser`, `OptionalUser`, `OptionalPrincipal`, `require_role`, session-only
routes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from stagecast.accounts import service as accounts
from stagecast.accounts.models import Role, User
from stagecast.accounts.security import AccessClaims
from stagecast.deps import READ_METHODS, RuntimeDep, SessionDep
from stagecast.errors import AuthenticationRequired, InvalidToken, PermissionDenied

# auto_error=False: a missing credential is not an error for routes open to anonymous callers.
_bearer = HTTPBearer(auto_error=False, description="Access token from /api/v1/auth/login")
_api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Key from /developer/api-keys"
)


def access_claims(request: Request, token: str) -> AccessClaims:
    """Verify a request's access token once; the rate limiter and auth share the result."""
    cached: tuple[str, AccessClaims] | None = getattr(request.state, "access_claims", None)
    if cached is not None and cached[0] == token:
        return cached[1]
    claims: AccessClaims = request.app.state.runtime.tokens.decode_access(token)
    request.state.access_claims = (token, claims)
    return claims


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a user through a session's access token or an API key."""

    user: User
    session_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    scopes: frozenset[str] | None = None  # None: a session may do all its user may do

    @property
    def via_api_key(self) -> bool:
        return self.api_key_id is not None

    def require_session(self) -> uuid.UUID:
        """The signed-in session behind the call; API keys have none."""
        if self.session_id is None:
            raise PermissionDenied("This action needs a signed-in session, not an API key")
        return self.session_id


async def optional_principal(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal | None:
    """Resolve the caller; a credential that is present but wrong is always an error.

    A bearer token whose session this node vouched for lately costs no statement
    (accounts/principals.py); otherwise one on the request's own session, outside the route's
    transaction and without BEGIN/COMMIT around it (a single read is consistent on its own):
    no write lock on SQLite, one round trip on PostgreSQL. "Last used" is noted, written
    later in a batch."""
    if request.headers.get("authorization") and bearer is None:
        raise InvalidToken("Use the Bearer authorization scheme")
    if bearer is not None and api_key:
        raise AuthenticationRequired("Send a bearer token or an API key, not both")
    if bearer is not None:
        claims = access_claims(request, bearer.credentials)
        cache = runtime.principals
        # A merged copy attaches to the session, which begins its (connectionless)
        # transaction: it ends here too, so the route begins its own as it would anyway.
        async with session.begin():
            user = cache.lookup(
                session.sync_session, user_id=claims.user_id, session_id=claims.session_id
            )
            if user is None:
                epoch = cache.epoch
                await session.connection(execution_options=runtime.db.autocommit_options)
                user, auth_session = await accounts.resolve_access(session, claims)
                cache.remember(
                    user,
                    session_id=auth_session.id,
                    session_expires_at=auth_session.expires_at,
                    token_expires_at=claims.expires_at,
                    read_at_epoch=epoch,
                )
        request.state.audit_actor = (user.id, None)  # who the audit log names
        runtime.touches.session_used(claims.session_id)
        return Principal(user=user, session_id=claims.session_id)
    if api_key:
        async with runtime.db.one_read(session):
            user, key = await accounts.resolve_api_key(session, api_key)
        request.state.audit_actor = (user.id, key.id)
        runtime.touches.api_key_used(key.id)
        scopes = frozenset(key.scopes)
        needed = "read" if request.method in READ_METHODS else "write"
        if needed not in scopes:
            raise PermissionDenied(f"This API key lacks the '{needed}' scope")
        return Principal(user=user, api_key_id=key.id, scopes=scopes)
    return None


async def current_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise AuthenticationRequired()
    return principal


async def session_principal(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    """Only a signed-in session, not an API key, may manage sessions and keys."""
    principal.require_session()
    return principal


async def current_user(principal: Annotated[Principal, Depends(current_principal)]) -> User:
    return principal.user


async def optional_user(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> User | None:
    return principal.user if principal else None


def require_role(role: Role) -> Callable[[User], Awaitable[User]]:
    """Dependency: the caller must hold `role` or a higher one."""

    async def dependency(user: Annotated[User, Depends(current_user)]) -> User:
        if user.role_enum.rank < role.rank:
            raise PermissionDenied(f"This action needs the {role.value} role")
        return user

    return dependency


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
SessionPrincipal = Annotated[Principal, Depends(session_principal)]
CurrentUser = Annotated[User, Depends(current_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]
AdminUser = Annotated[User, Depends(require_role(Role.ADMIN))]
# Platform staff: moderators and admins (the moderation queue).
StaffUser = Annotated[User, Depends(require_role(Role.MODERATOR))]
