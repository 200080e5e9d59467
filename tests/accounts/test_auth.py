"""Auth over HTTP: register, login, me, refresh rotation and reuse, logout, tokens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from stagecast.accounts.models import User
from stagecast.accounts.security import Passwords
from stagecast.app import create_app
from stagecast.db.engine import Database
from stagecast.errors import InvalidToken
from stagecast.runtime import Runtime
from tests.conftest import make_settings
from tests.factories import PASSWORD, login, register, unique_name


async def test_register_signs_in_and_me_returns_private_profile(client: httpx.AsyncClient) -> None:
    name = unique_name()
    response = await client.post(
        "/api/v1/auth/register",
        json={"username": name, "email": f"  {name.upper()}@Example.COM ", "password": PASSWORD},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["token_type"] == "bearer"
    assert 15 * 60 - 5 <= body["expires_in"] <= 15 * 60
    assert body["refresh_token"].startswith("rt_")
    assert body["user"]["email"] == f"{name}@example.com"  # normalised
    assert body["user"]["role"] == "viewer"
    assert "password_hash" not in body["user"]
    assert response.headers["cache-control"] == "no-store"
    assert "stagecast_refresh" in response.cookies

    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["username"] == name
    assert me.json()["email"] == f"{name}@example.com"


async def test_usernames_are_unique_case_insensitively(client: httpx.AsyncClient) -> None:
    account = await register(client)
    response = await client.post(
        "/api/v1/auth/register",
        json={
            "username": account.username.upper(),
            "email": "other@example.com",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 409
    assert response.json()["code"] == "USERNAME_TAKEN"


async def test_emails_are_unique_after_normalisation(client: httpx.AsyncClient) -> None:
    account = await register(client)
    response = await client.post(
        "/api/v1/auth/register",
        json={"username": unique_name(), "email": account.email.upper(), "password": PASSWORD},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "EMAIL_TAKEN"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Sh0rt!", "at least 10"),
        ("alllowercaseletters", "mix at least three"),
        ("Password123", "too common"),
        ("aaaaaaA1!aaaaa", "repeat"),
    ],
)
async def test_weak_passwords_are_refused_and_nothing_is_created(
    client: httpx.AsyncClient, password: str, reason: str
) -> None:
    name = unique_name()
    response = await client.post(
        "/api/v1/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": password},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "VALIDATION_ERROR"
    assert any(reason in e["message"] for e in problem["errors"])
    assert all(e["field"] == "password" for e in problem["errors"])
    # Nothing was stored: the same username can still register with a good password.
    await register(client, username=name)


async def test_password_may_not_contain_the_username(client: httpx.AsyncClient) -> None:
    name = unique_name("streamer")
    response = await client.post(
        "/api/v1/auth/register",
        json={"username": name, "email": f"x{name}@example.com", "password": f"{name}-Pass!"},
    )
    assert response.status_code == 422
    assert "username" in response.text


async def test_login_by_email_or_username(client: httpx.AsyncClient) -> None:
    account = await register(client)
    by_email = await client.post(
        "/api/v1/auth/login", json={"email": account.email.upper(), "password": PASSWORD}
    )
    assert by_email.status_code == 200
    by_name = await client.post(
        "/api/v1/auth/login", json={"username": account.username.upper(), "password": PASSWORD}
    )
    assert by_name.status_code == 200
    assert by_email.json()["session_id"] != by_name.json()["session_id"]
    both = await client.post(
        "/api/v1/auth/login",
        json={"email": account.email, "username": account.username, "password": PASSWORD},
    )
    assert both.status_code == 422


async def test_wrong_email_and_wrong_password_answer_the_same(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = await register(client)
    passwords: Passwords = app.state.runtime.passwords
    verified: list[bool] = []
    original = passwords._verify

    def spy(password_hash: str | None, password: str) -> bool:
        verified.append(password_hash is None)
        return original(password_hash, password)

    monkeypatch.setattr(passwords, "_verify", spy)
    wrong_password = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": "Wrong-Pass-99"}
    )
    wrong_email = await client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "Wrong-Pass-99"}
    )
    assert wrong_password.status_code == wrong_email.status_code == 401

    def comparable(response: httpx.Response) -> dict[str, object]:
        return {k: v for k, v in response.json().items() if k != "request_id"}

    assert comparable(wrong_password) == comparable(wrong_email)
    assert wrong_email.json()["code"] == "INVALID_CREDENTIALS"
    # Both paths ran a full Argon2 verification (the unknown email against a dummy hash),
    # which is what keeps their timing alike.
    assert verified == [False, True]


async def test_refresh_rotates_and_reuse_revokes_the_session(client: httpx.AsyncClient) -> None:
    account = await register(client)
    first = await client.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != account.refresh_token
    assert rotated["session_id"] == account.session_id

    # The new access token works.
    new_headers = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert (await client.get("/api/v1/auth/me", headers=new_headers)).status_code == 200

    # Presenting the old refresh token again is reuse: the whole session is revoked.
    reused = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert reused.status_code == 401
    assert reused.json()["code"] == "REFRESH_TOKEN_REUSED"
    after = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert after.status_code == 401
    assert after.json()["code"] == "SESSION_REVOKED"
    me = await client.get("/api/v1/auth/me", headers=new_headers)
    assert me.status_code == 401
    assert me.json()["code"] == "SESSION_REVOKED"
    # Other sessions of the same user are untouched.
    other = await login(client, account)
    assert (
        await client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {other['access_token']}"}
        )
    ).status_code == 200


async def test_refresh_from_cookie_and_unknown_token(client: httpx.AsyncClient) -> None:
    account = await register(client)  # the client keeps the refresh cookie
    # The cookie is ambient authority: without the CSRF token it is refused (and kept).
    refused = await client.post("/api/v1/auth/refresh")
    assert refused.status_code == 403
    assert refused.json()["code"] == "CSRF_TOKEN_INVALID"
    token = (await client.get("/api/v1/csrf-token")).json()["csrf_token"]
    by_cookie = await client.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": token})
    assert by_cookie.status_code == 200
    assert by_cookie.json()["session_id"] == account.session_id
    client.cookies.clear()
    missing = await client.post("/api/v1/auth/refresh")
    assert missing.status_code == 401
    unknown = await client.post("/api/v1/auth/refresh", json={"refresh_token": "rt_nope"})
    assert unknown.status_code == 401
    assert unknown.json()["code"] == "INVALID_TOKEN"


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    account = await register(client)
    client.cookies.clear()
    response = await client.post("/api/v1/auth/logout", headers=account.headers)
    assert response.status_code == 204
    me = await client.get("/api/v1/auth/me", headers=account.headers)
    assert me.status_code == 401
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert refreshed.status_code == 401


async def test_logout_with_only_the_refresh_token(client: httpx.AsyncClient) -> None:
    account = await register(client)
    client.cookies.clear()
    response = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": account.refresh_token}
    )
    assert response.status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=account.headers)).status_code == 401


async def test_me_requires_authentication(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.json()["code"] == "AUTHENTICATION_REQUIRED"
    assert response.headers["www-authenticate"].startswith("Bearer")
    basic = await client.get("/api/v1/auth/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def test_expired_tampered_and_forged_tokens_are_refused(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    account = await register(client)
    runtime: Runtime = app.state.runtime
    claims = runtime.tokens.decode_access(account.access_token)

    expired, _ = runtime.tokens.issue(
        subject=str(claims.user_id),
        token_type="access",
        ttl=timedelta(minutes=-5),
        claims={"sid": str(claims.session_id), "role": "viewer"},
    )
    header, payload, signature = account.access_token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tampered = ".".join([header, _b64({**decoded, "role": "admin"}), signature])
    unsigned = ".".join([_b64({"alg": "none", "typ": "JWT"}), _b64(decoded), ""])
    # HS256 "signed" with the server's public key: the classic algorithm-confusion attack.
    # PyJWT will not build such a token, so it is forged by hand.
    public_pem = runtime.tokens._public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused_head = _b64({"alg": "HS256", "typ": "JWT", "kid": runtime.tokens.key_id})
    signing_input = f"{confused_head}.{_b64(decoded)}".encode()
    mac = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    confused = f"{signing_input.decode()}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    foreign = jwt.encode(decoded, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    wrong_type, _ = runtime.tokens.issue(subject=str(claims.user_id), token_type="chat")

    for token, code in [
        (expired, "INVALID_TOKEN"),
        (tampered, "INVALID_TOKEN"),
        (unsigned, "INVALID_TOKEN"),
        (confused, "INVALID_TOKEN"),
        (foreign, "INVALID_TOKEN"),
        (wrong_type, "INVALID_TOKEN"),
        ("not-a-jwt", "INVALID_TOKEN"),
    ]:
        response = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        assert response.json()["code"] == code
    assert (
        "expired"
        in (
            await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {expired}"})
        ).json()["detail"]
    )


async def test_jwks_publishes_the_verifying_key(client: httpx.AsyncClient) -> None:
    account = await register(client)
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert len(keys) == 1
    jwk = keys[0]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert "d" not in jwk  # never the private part
    public = jwt.PyJWK(jwk).key
    claims = jwt.decode(account.access_token, public, algorithms=["EdDSA"], issuer="stagecast")
    assert claims["sub"] == account.id
    assert jwt.get_unverified_header(account.access_token)["kid"] == jwk["kid"]


async def test_signing_key_survives_a_restart(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(tmp_path, database_url)
    first = create_app(settings, database=database)
    second = create_app(settings, database=database)
    async with LifespanManager(first), LifespanManager(second):
        assert first.state.runtime.tokens.jwks() == second.state.runtime.tokens.jwks()
    key_file = settings.data_dir / "keys" / "jwt-ed25519.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600


async def test_login_upgrades_a_hash_made_with_older_cost(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    old = create_app(make_settings(tmp_path / "old", database_url), database=database)
    new = create_app(
        make_settings(tmp_path / "new", database_url, password_time_cost=2), database=database
    )
    async with LifespanManager(old), LifespanManager(new):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=old), base_url="http://old"
        ) as old_client:
            account = await register(old_client)
        runtime: Runtime = new.state.runtime
        async with runtime.db.session() as session, session.begin():
            before = (await session.get_one(User, uuid.UUID(account.id))).password_hash
        assert "t=1" in before
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=new), base_url="http://new"
        ) as new_client:
            await login(new_client, account)
            await login(new_client, account)  # the upgraded hash still verifies
        async with runtime.db.session() as session, session.begin():
            after = (await session.get_one(User, uuid.UUID(account.id))).password_hash
        assert "t=2" in after


async def test_a_verified_token_is_remembered_until_it_expires(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    account = await register(client)
    runtime: Runtime = app.state.runtime
    claims = runtime.tokens.decode_access(account.access_token)
    # Expired 2.5 s ago (3.5 s at most, `exp` is in whole seconds): inside the verification's
    # 5 s leeway, so accepted and remembered; 3.5 s later it is past the leeway, and the
    # remembered claims must not count.
    nearly, _ = runtime.tokens.issue(
        subject=str(claims.user_id),
        token_type="access",
        ttl=timedelta(seconds=-2.5),
        claims={"sid": str(claims.session_id), "role": "viewer"},
    )
    auth = {"Authorization": f"Bearer {nearly}"}
    assert (await client.get("/api/v1/auth/me", headers=auth)).status_code == 200
    assert runtime.tokens.decode_access(nearly) is runtime.tokens.decode_access(nearly)
    await asyncio.sleep(3.5)
    refused = await client.get("/api/v1/auth/me", headers=auth)
    assert refused.status_code == 401
    assert refused.json()["code"] == "INVALID_TOKEN"
    assert "expired" in refused.json()["detail"]
    # A token remembered under one type is not accepted as another (chat vs access).
    with pytest.raises(InvalidToken):
        runtime.tokens.decode_access(account.access_token, token_type="chat")
