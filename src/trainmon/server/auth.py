"""Who may read and who may write.

The only proofs of authority are the write token (``Authorization: Bearer``) and a dashboard
session that was issued in exchange for it (the sign-in page or a one-time sign-in link;
an HttpOnly, SameSite=Strict cookie). A session writes only with its CSRF token, which is
derived from that session and handed only to a request carrying its cookie. ``Sec-Fetch-Site``
and ``Origin`` are easy to forge outside a browser: they may refuse a request, never grant one.
On loopback, reads need nothing; bound beyond it, reads need the token or a session too."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from fastapi import Request
from starlette.types import Scope

from trainmon.errors import Forbidden, Unauthorized
from trainmon.server.sessions import SessionBook, csrf_token
from trainmon.settings import Settings

COOKIE_NAME = "trainmon_session"
CSRF_HEADER = "x-csrf-token"
_UNCHECKED = "unchecked"


@dataclass(frozen=True, slots=True)
class Authority:
    """What a write proved: the token itself, or a signed-in dashboard session."""

    kind: Literal["token", "session"]
    session_id: str | None = None


def valid_token(settings: Settings, candidate: str | None) -> bool:
    return candidate is not None and hmac.compare_digest(
        candidate.encode(), settings.token.encode()
    )


def bearer(request: Request) -> str | None:
    return _bearer_value(request.headers.get("authorization", ""))


def bearer_of(scope: Scope) -> str | None:
    """The bearer token of a raw ASGI request (server/fast_ingest.py), as ``bearer`` reads it."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return _bearer_value(value.decode("latin-1"))
    return None


def _bearer_value(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def session_of(request: Request) -> str | None:
    """The live session behind this request's cookie (looked up once per request)."""
    found: str | None = getattr(request.state, "session_id", _UNCHECKED)
    if found == _UNCHECKED:
        book: SessionBook = request.app.state.sessions
        found = book.check(request.cookies.get(COOKIE_NAME))
        request.state.session_id = found
    return found


def can_read(request: Request, settings: Settings) -> bool:
    if not settings.reads_need_token:
        return True
    return valid_token(settings, bearer(request)) or session_of(request) is not None


def check_read(request: Request, settings: Settings) -> None:
    if not can_read(request, settings):
        raise Unauthorized(
            "this server is bound beyond loopback: send Authorization: Bearer <token>"
        )


def browser_refusal(request: Request) -> str | None:
    """Why the browser's own headers say this request came from another site, if they do."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return "cross-site request refused"
    origin = request.headers.get("origin")
    if origin == "null" and site == "same-origin":
        return None  # a same-origin form under Referrer-Policy: no-referrer sends "null"
    if (
        origin is not None
        and urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()
    ):
        return "cross-origin request refused"
    return None


def check_write(request: Request, settings: Settings) -> Authority:
    token = bearer(request)
    if token is not None:
        if valid_token(settings, token):
            return Authority("token")
        raise Unauthorized("the write token is wrong")
    session_id = session_of(request)
    if session_id is None:
        raise Unauthorized(
            "writes need the write token (send Authorization: Bearer <token>; it is "
            "$TRAINMON_TOKEN or the token file in the server's data directory) or, from "
            "the dashboard, a signed-in session"
        )
    csrf = request.headers.get(CSRF_HEADER)
    if csrf is None or not hmac.compare_digest(
        csrf.encode(), csrf_token(settings, session_id).encode()
    ):
        raise Forbidden("the CSRF token is missing or wrong; reload the page")
    refusal = browser_refusal(request)
    if refusal is not None:
        raise Forbidden(refusal)
    return Authority("session", session_id)


def require_token(authority: Authority, what: str) -> None:
    """Some writes are for the token alone, never for a page session."""
    if authority.kind != "token":
        raise Forbidden(f"{what} needs the write token itself, not a dashboard session")
