"""CSRF protection for the routes a cookie authenticates (the refresh cookie).

Signed double-submit: `GET /api/v1/csrf-token` hands out `<nonce>.<hmac>` in its body and in
an HttpOnly cookie; a request that authenticates by the refresh cookie must echo the token in
`X-CSRF-Token`. Another site can make the browser send the cookies, but cannot read the token
from our answer (CORS), so it cannot send the header. The refresh cookie is already
`SameSite=Strict`; this is the second lock, for browsers or proxies that lose that attribute.
Requests that send the refresh token in the body carry no ambient authority and need no token.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request

from stagecast.crypto import SecretBox
from stagecast.errors import PermissionDenied

COOKIE = "stagecast_csrf"
HEADER = "X-CSRF-Token"
COOKIE_PATH = "/api/v1"
TTL_SECONDS = 7 * 24 * 3600
_PURPOSE = "csrf"


class CsrfFailed(PermissionDenied):
    code, title = "CSRF_TOKEN_INVALID", "The CSRF token is missing or does not match"


def issue(box: SecretBox) -> str:
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{box.lookup_hash(_PURPOSE, nonce)[:32]}"


def _signed(box: SecretBox, token: str) -> bool:
    nonce, _, signature = token.partition(".")
    if not nonce or len(token) > 200:
        return False
    return hmac.compare_digest(signature, box.lookup_hash(_PURPOSE, nonce)[:32])


def verify(request: Request) -> None:
    """Refuse a cookie-authenticated request whose header does not echo its CSRF cookie."""
    box: SecretBox = request.app.state.runtime.secrets
    cookie = request.cookies.get(COOKIE)
    header = request.headers.get(HEADER)
    if not cookie or not header:
        raise CsrfFailed(
            f"Requests authenticated by the refresh cookie need the {HEADER} header: "
            "GET /api/v1/csrf-token first"
        )
    if not hmac.compare_digest(cookie, header) or not _signed(box, cookie):
        raise CsrfFailed()
