"""Who may read and who may write.

- A write needs the bearer token, or — from the dashboard page — the CSRF token that only a
  same-origin page can read (``GET /api/auth/csrf``), sent in ``X-CSRF-Token`` by a request the
  browser marks same-origin. The write token itself never reaches the page.
- Bound beyond loopback, reads need the token too, or the session cookie that ``/login`` sets.
Derived tokens are HMACs of the write token, so rotating it revokes them all."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from fastapi import Request

from trainmon.errors import Forbidden, Unauthorized
from trainmon.settings import Settings

COOKIE_NAME = "trainmon_session"
CSRF_HEADER = "x-csrf-token"


def _derive(settings: Settings, purpose: str) -> str:
    return hmac.new(settings.token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def csrf_token(settings: Settings) -> str:
    return _derive(settings, "csrf")


def session_cookie_value(settings: Settings) -> str:
    return _derive(settings, "session")


def valid_token(settings: Settings, candidate: str | None) -> bool:
    return candidate is not None and hmac.compare_digest(
        candidate.encode(), settings.token.encode()
    )


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def has_session(request: Request, settings: Settings) -> bool:
    cookie = request.cookies.get(COOKIE_NAME)
    return cookie is not None and hmac.compare_digest(
        cookie.encode(), session_cookie_value(settings).encode()
    )


def can_read(request: Request, settings: Settings) -> bool:
    if not settings.reads_need_token:
        return True
    return valid_token(settings, bearer(request)) or has_session(request, settings)


def check_read(request: Request, settings: Settings) -> None:
    if not can_read(request, settings):
        raise Unauthorized(
            "this server is bound beyond loopback: send Authorization: Bearer <token>"
        )


def is_same_origin(request: Request) -> bool:
    """The browser says so (Sec-Fetch-Site), and any Origin it sends names this very host."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return site == "same-origin"
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


def check_write(request: Request, settings: Settings) -> None:
    token = bearer(request)
    if token is not None:
        if valid_token(settings, token):
            return
        raise Unauthorized("the write token is wrong")
    csrf = request.headers.get(CSRF_HEADER)
    if csrf is None:
        raise Unauthorized(
            "writes need the write token: send Authorization: Bearer <token> "
            "(it is in the server's data directory, or TRAINMON_TOKEN)"
        )
    if not hmac.compare_digest(csrf.encode(), csrf_token(settings).encode()):
        raise Forbidden("the CSRF token is wrong; reload the page")
    if not is_same_origin(request):
        raise Forbidden("cross-site request refused")
    if settings.reads_need_token and not has_session(request, settings):
        raise Unauthorized("sign in first")
