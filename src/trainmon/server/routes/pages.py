"""The dashboard page and, for servers bound beyond loopback, its sign-in page.

The page is the first paint only: the same job JSON the API serves goes through
``trainmon.presentation`` into ``_job_card.html``; static/live.js keeps it current from there.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from trainmon.errors import Forbidden
from trainmon.models import JobStatus
from trainmon.presentation import CardView, card_view, parse_iso, row_view
from trainmon.server.auth import (
    COOKIE_NAME,
    browser_refusal,
    can_read,
    session_of,
    valid_token,
)
from trainmon.server.deps import RenderDep, ServiceDep, SettingsDep, TemplatesDep
from trainmon.server.sessions import FailureLimiter, SessionBook, SignInLinks, csrf_token
from trainmon.service import ACTIVE_SHOWN, RECENT_SHOWN

router = APIRouter(include_in_schema=False)

# Pages change with every job update; never let a proxy or the back button serve an old one.
NO_STORE = {"Cache-Control": "no-store"}


# Each section newest first by the first of these job fields that is set, id breaking ties.
# The page carries this table on <main> (data-sort-*), and live.js places cards by it.
SORT_FIELDS: dict[str, tuple[str, ...]] = {
    "active": ("createdAt",),
    "recent": ("finishedAt", "updatedAt"),
}


# The table of all jobs: (API sort field or "" for a column that does not sort, heading).
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "Name"),
    ("status", "Status"),
    ("progress", "Progress"),
    ("", "Steps"),
    ("loss", "Loss"),
    ("createdAt", "Created"),
    ("startedAt", "Started"),
    ("finishedAt", "Finished"),
    ("duration", "Duration"),
    ("", "Tags"),
)

Drawn = tuple[Mapping[str, object], CardView]  # a job as the API serialises it, and its card


def _newest_first(drawn: list[Drawn], section: str) -> list[CardView]:
    fields = SORT_FIELDS[section]

    def sort_key(pair: Drawn) -> tuple[float, str]:
        job, card = pair
        stamp = next((job[f] for f in fields if job.get(f)), None)
        return (parse_iso(stamp) or 0.0, card.id)

    return [card for _, card in sorted(drawn, key=sort_key, reverse=True)]


@router.get("/", response_class=HTMLResponse)
def dashboard(
    request: Request,
    service: ServiceDep,
    render: RenderDep,
    settings: SettingsDep,
    templates: TemplatesDep,
) -> Response:
    if not can_read(request, settings):
        return RedirectResponse("/login", status_code=303, headers=NO_STORE)
    now = service.clock()
    board = service.dashboard()
    drawn = [(job, card_view(job, now)) for job in (render(j, now) for j in board.active)]
    recent = [render(job, now) for job in board.recent]  # newest end first, as the store lists
    session_id = session_of(request)
    context: dict[str, Any] = {
        "signed_in": session_id is not None,
        "csrf": csrf_token(settings, session_id) if session_id else "",
        "active_cards": _newest_first([d for d in drawn if d[1].active], "active"),
        "active_total": board.active_total,
        "recent_rows": [row_view(job, now) for job in recent],
        "sort_fields": SORT_FIELDS,
        "active_max": ACTIVE_SHOWN,
        "recent_max": RECENT_SHOWN,
        "statuses": [s.value for s in JobStatus],
        "table_sorts": TABLE_COLUMNS,
        "blank_card": card_view({}, now),
        "blank_row": row_view({}, now),
        "rendered_at": f"{now:.3f}",
    }
    return templates.TemplateResponse(request, "index.html", context, headers=NO_STORE)


def _local_path(target: str | None) -> str:
    """Where to go after signing in: a path on this server, never another site."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _login_page(
    request: Request,
    settings: SettingsDep,
    templates: TemplatesDep,
    error: str | None,
    status: int,
    *,
    next_path: str = "/",
    headers: dict[str, str] | None = None,
) -> Response:
    context = {
        "error": error,
        "next": next_path,
        "reads_need_token": settings.reads_need_token,
        "session_days": f"{settings.session_days:g}",
    }
    return templates.TemplateResponse(
        request, "login.html", context, status_code=status, headers={**NO_STORE, **(headers or {})}
    )


def _signed_in(request: Request, settings: SettingsDep, target: str) -> Response:
    """Open a session and hand its cookie to the browser."""
    book: SessionBook = request.app.state.sessions
    response = RedirectResponse(_local_path(target), status_code=303, headers=NO_STORE)
    response.set_cookie(
        COOKIE_NAME,
        book.open(),
        max_age=int(settings.session_days * 86400),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request,
    settings: SettingsDep,
    templates: TemplatesDep,
    next_path: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
) -> Response:
    target = _local_path(next_path)
    if session_of(request) is not None:
        return RedirectResponse(target, status_code=303, headers=NO_STORE)
    return _login_page(request, settings, templates, None, 200, next_path=target)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    settings: SettingsDep,
    templates: TemplatesDep,
    token: Annotated[str, Form(max_length=4096)] = "",
    next_path: Annotated[str, Form(alias="next", max_length=2000)] = "/",
) -> Response:
    target = _local_path(next_path)
    # A form another site submits would sign this browser in to a server it never chose.
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return _login_page(
            request, settings, templates, "Sign in from this server's own page.", 403
        )
    limiter: FailureLimiter = request.app.state.login_limiter
    client = request.client.host if request.client else "unknown"
    wait = limiter.retry_after(client)
    if wait:
        message = f"Too many wrong tokens. Try again in {wait} s."
        return _login_page(
            request, settings, templates, message, 429, next_path=target,
            headers={"Retry-After": str(wait)},
        )  # fmt: skip
    if not valid_token(settings, token.strip()):
        limiter.failed(client)
        message = "That token is not this server's."
        return _login_page(request, settings, templates, message, 401, next_path=target)
    return _signed_in(request, settings, target)


@router.get("/login/link/{code}", response_class=HTMLResponse)
def login_link(
    request: Request, settings: SettingsDep, templates: TemplatesDep, code: str
) -> Response:
    """The one-time sign-in link: spent by its first use, so a copy in a history is useless."""
    links: SignInLinks = request.app.state.sign_in_links
    if not links.redeem(code):
        message = (
            "That sign-in link was already used or has expired. Run `trainmon sign-in-link` "
            "for a new one, or sign in with the token."
        )
        return _login_page(request, settings, templates, message, 410)
    return _signed_in(request, settings, "/")


@router.post("/logout")
def logout(
    request: Request,
    settings: SettingsDep,
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    session_id = session_of(request)
    if session_id is not None:
        # The form carries the session's CSRF token: another site cannot sign you out.
        if browser_refusal(request) or not hmac.compare_digest(
            csrf.encode(), csrf_token(settings, session_id).encode()
        ):
            raise Forbidden("sign out from this server's own page")
        book: SessionBook = request.app.state.sessions
        book.close(request.cookies.get(COOKIE_NAME))
    response = RedirectResponse("/", status_code=303, headers=NO_STORE)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response
