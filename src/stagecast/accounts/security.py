"""Passwords (Argon2id), access tokens (EdDSA JWT) and opaque secrets (stored as hashes)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from stagecast.config import Settings
from stagecast.crypto import write_private_file
from stagecast.db.base import utcnow
from stagecast.errors import InvalidToken

ACCESS_TOKEN_TYPE = "access"  # noqa: S105 - a claim value, not a secret
CHAT_TOKEN_TYPE = "chat"  # noqa: S105 - a claim value, not a secret
CHAT_TOKEN_TTL = timedelta(minutes=5)
JWT_ALGORITHM = "EdDSA"
JWT_LEEWAY_SECONDS = 5
# Verified access tokens remembered per process (issue 14): verifying the Ed25519 signature
# and parsing the token cost ~0.2 ms, paid on every authenticated request otherwise. A token
# verifies the same way until it expires, so an entry lives until then at most; the session
# behind it is still checked on every request, so revocation is not affected.
VERIFIED_TOKENS_KEPT = 10_000


class Passwords:
    """Argon2id hashing, run off the event loop because it is deliberately slow."""

    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.password_time_cost,
            memory_cost=settings.password_memory_kib,
            parallelism=settings.password_parallelism,
        )
        # Verified against when the account does not exist, so that a wrong email costs the
        # same time as a wrong password and does not reveal which accounts exist.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password; with no hash, spend the same time and answer False."""
        return await asyncio.to_thread(self._verify, password_hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            self._hasher.verify(password_hash or self._dummy_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


# The most used passwords of public breach lists that pass the length and variety rules; a
# short list stops the worst without shipping a large data file.
_COMMON_PASSWORDS = frozenset(
    {
        "password1",
        "password12",
        "password123",
        "password1234",
        "passw0rd",
        "p@ssw0rd",
        "p@ssword1",
        "qwerty123",
        "qwerty1234",
        "qwertyuiop1",
        "iloveyou1",
        "welcome1",
        "welcome123",
        "admin1234",
        "administrator1",
        "letmein123",
        "monkey123",
        "dragon123",
        "football1",
        "baseball1",
        "sunshine1",
        "princess1",
        "abc12345",
        "abcd1234",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "zaq12wsx",
        "trustno1",
        "superman1",
        "starwars1",
        "changeme1",
        "changeme123",
        "stagecast1",
        "stagecast123",
        "streaming1",
        "twitch123",
    }
)

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 128


def password_problems(password: str, *, username: str = "", email: str = "") -> list[str]:
    """Return why a password is too weak (empty when it is acceptable)."""
    problems: list[str] = []
    if len(password) < PASSWORD_MIN_LENGTH:
        problems.append(f"must be at least {PASSWORD_MIN_LENGTH} characters long")
    if len(password) > PASSWORD_MAX_LENGTH:
        problems.append(f"must be at most {PASSWORD_MAX_LENGTH} characters long")
    classes = sum(
        [
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        ]
    )
    if classes < 3:
        problems.append(
            "must mix at least three of: lower-case letters, upper-case letters, digits, symbols"
        )
    lowered = password.lower()
    if lowered in _COMMON_PASSWORDS:
        problems.append("is too common")
    local_part = email.split("@", 1)[0].lower()
    for personal in (username.lower(), local_part):
        if len(personal) >= 4 and personal in lowered:
            problems.append("must not contain your username or email")
            break
    if len(set(password)) < 5:
        problems.append("must not repeat the same few characters")
    return problems


def new_secret(prefix: str, nbytes: int = 32) -> str:
    """Return a random opaque secret such as a refresh token or API key."""
    return f"{prefix}{secrets.token_urlsafe(nbytes)}"


def hash_secret(secret: str) -> str:
    """Hash a high-entropy secret for storage and lookup (no salt needed at 256 bits)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    role: str
    expires_at: datetime


def _load_or_create_key(settings: Settings) -> Ed25519PrivateKey:
    if settings.jwt_private_key:
        key = serialization.load_pem_private_key(settings.jwt_private_key.encode(), None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("STAGECAST_JWT_PRIVATE_KEY must be an Ed25519 private key (PEM)")
        return key
    path = Path(settings.data_dir) / "keys" / "jwt-ed25519.pem"
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return loaded
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private_file(path, pem)
    return key


class TokenSigner:
    """Signs and verifies access tokens with one Ed25519 key, published as a JWK set."""

    def __init__(self, settings: Settings) -> None:
        self._private = _load_or_create_key(settings)
        self._public: Ed25519PublicKey = self._private.public_key()
        self._issuer = settings.jwt_issuer
        self._ttl = settings.access_token_ttl
        self._jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(self._public))
        self.key_id = _jwk_thumbprint(self._jwk)
        self._jwk.update({"kid": self.key_id, "use": "sig", "alg": JWT_ALGORITHM})
        # (token type, token) -> its claims, least recently used first; only valid tokens.
        self._verified: OrderedDict[tuple[str, str], AccessClaims] = OrderedDict()

    @property
    def ttl(self) -> timedelta:
        return self._ttl

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._jwk]}

    def issue(
        self,
        *,
        subject: str,
        token_type: str,
        ttl: timedelta | None = None,
        claims: dict[str, Any] | None = None,
    ) -> tuple[str, datetime]:
        """Sign a token of a given type for a subject; return it and its expiry."""
        now = utcnow()
        expires = now + (ttl or self._ttl)
        payload: dict[str, Any] = {
            "iss": self._issuer,
            "sub": subject,
            "typ": token_type,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": secrets.token_urlsafe(12),
            **(claims or {}),
        }
        token = jwt.encode(
            payload, self._private, algorithm=JWT_ALGORITHM, headers={"kid": self.key_id}
        )
        return token, expires

    def decode(self, token: str, *, token_type: str) -> dict[str, Any]:
        """Verify a token's signature, expiry, issuer and type; raise InvalidToken if not."""
        try:
            header = jwt.get_unverified_header(token)
            # Only our algorithm: "none", HS256-with-the-public-key and the like are refused.
            if header.get("alg") != JWT_ALGORITHM or header.get("kid") not in (None, self.key_id):
                raise InvalidToken("Unsupported token algorithm or key")
            payload: dict[str, Any] = jwt.decode(
                token,
                self._public,
                algorithms=[JWT_ALGORITHM],
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "typ"]},
                leeway=JWT_LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("The token has expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("The token is invalid") from exc
        if payload.get("typ") != token_type:
            raise InvalidToken("The token is not of the expected type")
        return payload

    def issue_access(
        self,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        role: str,
        token_type: str = ACCESS_TOKEN_TYPE,
        ttl: timedelta | None = None,
    ) -> tuple[str, datetime]:
        """A token acting for a user's session: an access token, or a short chat token."""
        return self.issue(
            subject=str(user_id),
            token_type=token_type,
            ttl=ttl,
            claims={"sid": str(session_id), "role": role},
        )

    def issue_chat_token(
        self, *, user_id: uuid.UUID, session_id: uuid.UUID, role: str
    ) -> tuple[str, datetime]:
        """A short-lived token for the Socket.IO handshake (`auth: {token}`) acting for a
        signed-in session, so that pages need not hand the access token to the socket."""
        return self.issue_access(
            user_id=user_id,
            session_id=session_id,
            role=role,
            token_type=CHAT_TOKEN_TYPE,
            ttl=CHAT_TOKEN_TTL,
        )

    def decode_access(self, token: str, *, token_type: str = ACCESS_TOKEN_TYPE) -> AccessClaims:
        """Verify a session token, once per process: a token verified before is answered
        from memory until it expires (the same leeway as the verification's)."""
        key = (token_type, token)
        known = self._verified.get(key)
        if known is not None:
            if time.time() < known.expires_at.timestamp() + JWT_LEEWAY_SECONDS:
                self._verified.move_to_end(key)
                return known
            del self._verified[key]
            raise InvalidToken("The token has expired")
        payload = self.decode(token, token_type=token_type)
        try:
            claims = AccessClaims(
                user_id=uuid.UUID(payload["sub"]),
                session_id=uuid.UUID(payload["sid"]),
                role=str(payload.get("role", "")),
                expires_at=datetime.fromtimestamp(payload["exp"], UTC),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidToken("The token is invalid") from exc
        self._verified[key] = claims
        if len(self._verified) > VERIFIED_TOKENS_KEPT:
            self._verified.popitem(last=False)
        return claims


def _jwk_thumbprint(jwk: dict[str, Any]) -> str:
    # RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
    required = {k: jwk[k] for k in ("crv", "kty", "x")}
    digest = hashlib.sha256(json.dumps(required, separators=(",", ":"), sort_keys=True).encode())
    return jwt.utils.base64url_encode(digest.digest()).decode()
