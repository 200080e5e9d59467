"""HTTP routes of accounts: auth, sessions, API keys, users, admin user management."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status

from stagecast import csrf
from stagecast.accounts import service as accounts
from stagecast.accounts.deps import (
    AdminUser,
    CurrentUser,
    OptionalUser,
    Principal,
    SessionPrincipal,
    optional_principal,
)
from stagecast.accounts.models import Role, User, UserStatus
from stagecast.accounts.schemas import (
    AdminUserUpdate,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    LoginIn,
    PasswordChangeIn,
    Preferences,
    PreferencesUpdate,
    RefreshIn,
    RegisterIn,
    RoleIn,
    SessionLogoutIn,
    SessionOut,
    TokenPair,
    UserPrivate,
    UserPublic,
    UserUpdate,
)
from stagecast.accounts.service import IssuedTokens
from stagecast.admin import flags, maintenance
from stagecast.db.base import utcnow
from stagecast.deps import PageDep, RuntimeDep, SessionDep, client_ip
from stagecast.errors import AuthenticationRequired, problem_responses
from stagecast.pagination import Page, make_page
from stagecast.ratelimit import rate_limit

REFRESH_COOKIE = "stagecast_refresh"
REFRESH_COOKIE_PATH = "/api/v1"

auth_router = APIRouter(prefix="/auth", tags=["auth"])
sessions_router = APIRouter(
    prefix="/sessions", tags=["sessions"], responses=problem_responses(401, 403)
)
api_keys_router = APIRouter(
    prefix="/developer/api-keys", tags=["api keys"], responses=problem_responses(401, 403)
)
users_router = APIRouter(prefix="/users", tags=["users"])
admin_router = APIRouter(
    prefix="/admin/users", tags=["admin"], responses=problem_responses(401, 403)
)
jwks_router = APIRouter(tags=["auth"])

_auth_limit = Depends(rate_limit("auth", per="ip"))


def _token_pair(request: Request, response: Response, issued: IssuedTokens) -> TokenPair:
    now = utcnow()
    runtime = request.app.state.runtime
    request.state.audit_actor = (issued.user.id, None)  # sign-ups and sign-ins are theirs
    # The web app keeps the refresh token in an HttpOnly cookie scoped to the API; other
    # clients use the body. Both are the same token.
    response.set_cookie(
        REFRESH_COOKIE,
        issued.refresh_token,
        max_age=int((issued.refresh_expires_at - now).total_seconds()),
        path=REFRESH_COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https" or runtime.settings.environment == "production",
    )
    response.headers["Cache-Control"] = "no-store"
    return TokenPair(
        access_token=issued.access_token,
        expires_in=int((issued.access_expires_at - now).total_seconds()),
        refresh_token=issued.refresh_token,
        refresh_expires_in=int((issued.refresh_expires_at - now).total_seconds()),
        session_id=issued.session_id,
        user=accounts.private_profile(runtime.secrets, issued.user),
    )


def _refresh_token_of(request: Request, body: RefreshIn | None) -> str | None:
    if body is not None and body.refresh_token:
        return body.refresh_token
    cookie = request.cookies.get(REFRESH_COOKIE)
    if cookie:
        csrf.verify(request)  # the cookie is ambient authority: the page must prove it is ours
    return cookie


@auth_router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    dependencies=[_auth_limit],
    responses=problem_responses(403, 409, 422, 429),
)
async def register(
    body: RegisterIn, request: Request, response: Response, session: SessionDep, runtime: RuntimeDep
) -> TokenPair:
    """Create an account and sign it in (unless the `registrations` flag is off)."""
    await flags.require(runtime, "registrations")
    # Hash before the transaction: Argon2 is slow by design and must not hold a write lock.
    password_hash = await accounts.hash_new_password(
        runtime.passwords, password=body.password, username=body.username, email=str(body.email)
    )
    async with session.begin():
        user = await accounts.create_user(
            session, runtime.secrets, data=body, password_hash=password_hash
        )
        issued = await accounts.open_session(
            session,
            runtime.tokens,
            runtime.settings,
            user=user,
            user_agent=request.headers.get("user-agent"),
            ip=accounts.seal_ip(runtime.secrets, client_ip(request)),
        )
    return _token_pair(request, response, issued)


@auth_router.post(
    "/login", dependencies=[_auth_limit], responses=problem_responses(401, 403, 422, 429, 503)
)
async def login(
    body: LoginIn, request: Request, response: Response, session: SessionDep, runtime: RuntimeDep
) -> TokenPair:
    """Sign in with email (or username) and password."""
    async with session.begin():
        candidate = await accounts.find_login_candidate(
            session, email=body.email, username=body.username
        )
    # Verified between transactions: Argon2 is slow by design and must not hold a write lock.
    user, new_hash = await accounts.verify_credentials(runtime.passwords, candidate, body.password)
    await maintenance.refuse_unless_admin(runtime, user)  # during maintenance, admins only
    async with session.begin():
        issued = await accounts.open_session(
            session,
            runtime.tokens,
            runtime.settings,
            user=user,
            user_agent=request.headers.get("user-agent"),
            ip=accounts.seal_ip(runtime.secrets, client_ip(request)),
            new_password_hash=new_hash,
        )
    return _token_pair(request, response, issued)


async def _refresh(
    body: RefreshIn | None,
    request: Request,
    response: Response,
    session: SessionDep,
    runtime: RuntimeDep,
) -> TokenPair:
    raw = _refresh_token_of(request, body)
    if not raw:
        raise AuthenticationRequired("Send the refresh token in the body or its cookie")
    async with session.begin():
        outcome = await accounts.rotate_refresh_token(
            session,
            runtime.tokens,
            raw_token=raw,
            user_agent=request.headers.get("user-agent"),
            ip=accounts.seal_ip(runtime.secrets, client_ip(request)),
        )
    # Raised after the commit: a reused token's session revocation must stick.
    if not isinstance(outcome, IssuedTokens):
        raise outcome
    return _token_pair(request, response, outcome)


@auth_router.post(
    "/refresh", dependencies=[_auth_limit], responses=problem_responses(401, 403, 429)
)
async def refresh(
    request: Request,
    response: Response,
    session: SessionDep,
    runtime: RuntimeDep,
    body: RefreshIn | None = None,
) -> TokenPair:
    """Exchange a refresh token for a new pair; the old refresh token stops working."""
    return await _refresh(body, request, response, session, runtime)


@auth_router.post(
    "/logout", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(403)
)
async def logout(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal | None, Depends(optional_principal)],
    body: RefreshIn | None = None,
) -> Response:
    """End the current session (named by the access token or the refresh token)."""
    bearer_session = principal is not None and principal.session_id is not None
    raw = None if bearer_session else _refresh_token_of(request, body)
    async with session.begin():
        if principal is not None and principal.session_id is not None:
            await accounts.end_session(
                session, user=principal.user, session_id=principal.session_id
            )
        elif raw:
            await accounts.end_session_of_refresh_token(session, raw)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH)
    return response


@auth_router.post(
    "/password", dependencies=[_auth_limit], responses=problem_responses(401, 403, 422, 429)
)
async def change_password(
    body: PasswordChangeIn, principal: SessionPrincipal, session: SessionDep, runtime: RuntimeDep
) -> dict[str, int]:
    """Change your password; every other session (and its open sockets) is signed out."""
    user = principal.user
    # Argon2 outside the transactions: it is slow by design and must not hold a write lock.
    await accounts.verify_credentials(runtime.passwords, user, body.current_password)
    password_hash = await accounts.hash_new_password(
        runtime.passwords, password=body.new_password, username=user.username, email=user.email
    )
    async with session.begin():
        revoked = await accounts.change_password(
            session,
            user=await session.get_one(User, user.id),
            password_hash=password_hash,
            keep=principal.session_id,
        )
    return {"revoked": revoked}


@auth_router.get("/me", responses=problem_responses(401))
async def me(user: CurrentUser, runtime: RuntimeDep) -> UserPrivate:
    """The signed-in user's own profile."""
    return accounts.private_profile(runtime.secrets, user)


@jwks_router.get("/.well-known/jwks.json")
async def jwks(runtime: RuntimeDep, response: Response) -> dict[str, Any]:
    """The public keys that verify access tokens (JWK set, RFC 7517)."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return runtime.tokens.jwks()


@sessions_router.get("")
async def list_sessions(
    principal: SessionPrincipal, session: SessionDep, page: PageDep, runtime: RuntimeDep
) -> Page[SessionOut]:
    """The user's signed-in sessions (devices), newest first."""
    async with session.begin():
        rows, cursor = await accounts.list_sessions(session, user_id=principal.user.id, params=page)
    items = [
        SessionOut.model_validate(row).model_copy(
            update={
                "current": row.id == principal.session_id,
                "ip": accounts.open_ip(runtime.secrets, row.ip),
            }
        )
        for row in rows
    ]
    return make_page(items, cursor)


@sessions_router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout_session(
    principal: SessionPrincipal, session: SessionDep, body: SessionLogoutIn | None = None
) -> Response:
    """End one session: the one given, or the current one."""
    target = body.session_id if body and body.session_id else principal.require_session()
    async with session.begin():
        await accounts.end_session(session, user=principal.user, session_id=target)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@sessions_router.post("/logout-all")
async def logout_all_sessions(principal: SessionPrincipal, session: SessionDep) -> dict[str, int]:
    """End every session of the user, this one included."""
    async with session.begin():
        count = await accounts.end_all_sessions(
            session, user_id=principal.user.id, reason="logout_all"
        )
    return {"revoked": count}


@sessions_router.post("/refresh", dependencies=[_auth_limit], responses=problem_responses(403, 429))
async def refresh_session(
    request: Request,
    response: Response,
    session: SessionDep,
    runtime: RuntimeDep,
    body: RefreshIn | None = None,
) -> TokenPair:
    """Seed 003's name for `/auth/refresh`."""
    return await _refresh(body, request, response, session, runtime)


@api_keys_router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(422))
async def create_api_key(
    body: ApiKeyCreate, principal: SessionPrincipal, session: SessionDep
) -> ApiKeyCreated:
    """Create an API key. The raw key is in this response only."""
    async with session.begin():
        key, raw = await accounts.create_api_key(session, user=principal.user, data=body)
    return ApiKeyCreated.model_validate({**ApiKeyOut.model_validate(key).model_dump(), "key": raw})


@api_keys_router.get("")
async def list_api_keys(
    principal: SessionPrincipal, session: SessionDep, page: PageDep
) -> Page[ApiKeyOut]:
    """The user's active API keys (without the keys themselves)."""
    async with session.begin():
        rows, cursor = await accounts.list_api_keys(session, user_id=principal.user.id, params=page)
    return make_page([ApiKeyOut.model_validate(r) for r in rows], cursor)


@api_keys_router.delete(
    "/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404)
)
async def revoke_api_key(
    key_id: uuid.UUID, principal: SessionPrincipal, session: SessionDep
) -> Response:
    """Revoke an API key; it stops working at once."""
    async with session.begin():
        await accounts.revoke_api_key(session, user=principal.user, key_id=key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@users_router.get(
    "/{user_id}",
    response_model=UserPrivate | UserPublic,
    responses=problem_responses(401, 404),
)
async def get_user(
    user_id: str, viewer: OptionalUser, session: SessionDep, runtime: RuntimeDep
) -> UserPublic:
    """A user's profile by id, username or `me`: public fields, or all of them for its owner."""
    async with session.begin():
        user = await accounts.get_user_for(session, user_id, viewer)
    if viewer is not None and (viewer.id == user.id or viewer.role_enum is Role.ADMIN):
        return accounts.private_profile(runtime.secrets, user)
    return UserPublic.model_validate(user)


@users_router.patch("/{user_id}", responses=problem_responses(401, 403, 404, 409, 422))
async def update_user(
    user_id: str, body: UserUpdate, actor: CurrentUser, session: SessionDep, runtime: RuntimeDep
) -> UserPrivate:
    """Change a profile (its owner or an admin)."""
    async with session.begin():
        user = await accounts.get_user_for(session, user_id, actor)
        accounts.ensure_can_manage(actor, user)
        user = await accounts.update_user(session, runtime.secrets, user=user, data=body)
    return accounts.private_profile(runtime.secrets, user)


@users_router.get("/{user_id}/preferences", responses=problem_responses(401, 403, 404))
async def get_preferences(user_id: str, actor: CurrentUser, session: SessionDep) -> Preferences:
    """A user's preferences (its owner or an admin)."""
    async with session.begin():
        user = await accounts.get_user_for(session, user_id, actor)
        accounts.ensure_can_manage(actor, user)
    return accounts.preferences_of(user)


@users_router.patch("/{user_id}/preferences", responses=problem_responses(401, 403, 404, 422))
async def update_preferences(
    user_id: str, body: PreferencesUpdate, actor: CurrentUser, session: SessionDep
) -> Preferences:
    """Change some preferences; the others keep their values."""
    async with session.begin():
        user = await accounts.get_user_for(session, user_id, actor)
        accounts.ensure_can_manage(actor, user)
        return await accounts.update_preferences(session, user=user, data=body)


@admin_router.get("")
async def admin_list_users(
    _admin: AdminUser,
    session: SessionDep,
    runtime: RuntimeDep,
    page: PageDep,
    role: Annotated[RoleIn | None, Query(description="a role; `performer` means creator")] = None,
    status_: Annotated[
        Literal["active", "suspended", "banned"] | None, Query(alias="status")
    ] = None,
    q: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[UserPrivate]:
    """All users, newest first, filtered by role, status or a username/email fragment."""
    async with session.begin():
        rows, cursor = await accounts.list_users(
            session,
            params=page,
            role=role,
            status=UserStatus(status_) if status_ else None,
            query_text=q,
        )
    return make_page([accounts.private_profile(runtime.secrets, r) for r in rows], cursor)


@admin_router.patch("/{user_id}", responses=problem_responses(404, 422))
async def admin_update_user(
    user_id: uuid.UUID,
    body: AdminUserUpdate,
    admin: AdminUser,
    session: SessionDep,
    runtime: RuntimeDep,
) -> UserPrivate:
    """Change a user's role or suspend them (suspension ends all their sessions)."""
    async with session.begin():
        user = await accounts.admin_update_user(session, actor=admin, user_id=user_id, data=body)
    return accounts.private_profile(runtime.secrets, user)
