"""The dashboard's CSRF token (for a signed-in session only) and one-time sign-in links."""

from __future__ import annotations

from fastapi import APIRouter, Request

from trainmon.errors import Unauthorized
from trainmon.server.auth import require_token, session_of
from trainmon.server.deps import AuthorityDep, ReadAccess, SettingsDep
from trainmon.server.sessions import SignInLinks, csrf_token

router = APIRouter(prefix="/api/auth", tags=["auth"], dependencies=[ReadAccess])


def sign_in_path(links: SignInLinks) -> str:
    return f"/login/link/{links.issue()}"


@router.get("/csrf")
def get_csrf(request: Request, settings: SettingsDep) -> dict[str, str]:
    """The signed-in page's CSRF token. Without a session there is none to give."""
    session_id = session_of(request)
    if session_id is None:
        raise Unauthorized(
            "sign in to change anything: open the sign-in link `trainmon serve` printed, "
            "or sign in at /login with the server's token"
        )
    return {"csrfToken": csrf_token(settings, session_id)}


@router.post("/sign-in-links", status_code=201)
def new_sign_in_link(
    request: Request, settings: SettingsDep, authority: AuthorityDep
) -> dict[str, str]:
    """A one-time link that signs a browser in (``trainmon sign-in-link`` prints one). The
    path is what counts: a client far away prefixes the address it reached us by."""
    require_token(authority, "making a sign-in link")
    path = sign_in_path(request.app.state.sign_in_links)
    return {"path": path, "url": settings.url + path}
