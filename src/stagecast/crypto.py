"""Server-side secrets kept outside the database: key files and keys derived from them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from stagecast.config import Settings


def write_private_file(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def load_or_create_secret(settings: Settings) -> bytes:
    """The server secret: from settings, else from data_dir/keys/secret.key (made on first run)."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = Path(settings.data_dir) / "keys" / "secret.key"
    if path.exists():
        return path.read_bytes().strip()
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32))
    write_private_file(path, secret)
    return secret


class SecretBox:
    """Keyed hashing and encryption for values that must survive a database leak."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._keys: dict[str, bytes] = {}  # a few purposes; hot paths (audit) hash per request

    def _derive(self, purpose: str) -> bytes:
        key = self._keys.get(purpose)
        if key is None:
            key = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()
            ).derive(self._secret)
            self._keys[purpose] = key
        return key

    def lookup_hash(self, purpose: str, value: str) -> str:
        """HMAC of a value: lets us find it by value, useless without the server secret."""
        return hmac.new(
            self._derive(f"lookup:{purpose}"), value.encode(), hashlib.sha256
        ).hexdigest()

    def encrypt(self, purpose: str, value: str) -> str:
        fernet = Fernet(base64.urlsafe_b64encode(self._derive(f"encrypt:{purpose}")))
        return fernet.encrypt(value.encode()).decode()

    def decrypt(self, purpose: str, token: str) -> str | None:
        fernet = Fernet(base64.urlsafe_b64encode(self._derive(f"encrypt:{purpose}")))
        try:
            return fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            return None

    def encrypt_bytes(self, purpose: str, data: bytes, *, context: str) -> bytes:
        """AES-256-GCM of a file: a random nonce, then the ciphertext and its tag. `context`
        (the object's name) is authenticated too, so a file moved to another name fails."""
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self._derive(f"file:{purpose}")).encrypt(nonce, data, context.encode())
        return nonce + sealed

    def decrypt_bytes(self, purpose: str, sealed: bytes, *, context: str) -> bytes | None:
        """The file `encrypt_bytes` sealed, or None when it was altered or sealed elsewhere."""
        try:
            return AESGCM(self._derive(f"file:{purpose}")).decrypt(
                sealed[:12], sealed[12:], context.encode()
            )
        except (InvalidTag, ValueError):
            return None

    def sign(self, purpose: str, value: str, *, expires_at: int) -> str:
        """A token that proves the server issued `value` for `purpose` until `expires_at`
        (Unix seconds): `<value>.<expires>.<hmac>`."""
        body = f"{value}.{expires_at}"
        mac = hmac.new(self._derive(f"sign:{purpose}"), body.encode(), hashlib.sha256)
        return f"{body}.{base64.urlsafe_b64encode(mac.digest()).decode().rstrip('=')}"

    def verify_signed(self, purpose: str, token: str, *, now: float | None = None) -> str | None:
        """The value of a token `sign` made for `purpose`, or None if forged or expired."""
        value, _, _mac = token.rpartition(".")
        value, _, expires = value.rpartition(".")
        if not value or not expires.isdigit():
            return None
        expected = self.sign(purpose, value, expires_at=int(expires))
        if not hmac.compare_digest(expected.encode(), token.encode()):
            return None
        if int(expires) <= (time.time() if now is None else now):
            return None
        return value
