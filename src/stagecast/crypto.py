"""Server-side secrets kept outside the database: key files and keys derived from them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
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
