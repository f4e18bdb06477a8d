"""The dashboard page and, for servers bound beyond loopback, its sign-in page.

The page is the first paint only: the same job JSON the API serves goes through
``trainmon.presentation`` into ``_job_card.html``; static/live.js keeps it current from there.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from trainmon.presentation import CardView, card_view, parse_iso
from trainmon.server.auth import COOKIE_NAME, can_read, session_cookie_value, valid_token
from trainmon.server.deps import ServiceDep, SettingsDep, TemplatesDep
from trainmon.server.schemas import render_job

router = APIRouter(include_in_schema=False)

SESSION_DAYS = 30
# Pages change with every job update; never let a proxy or the back button serve an old one.
NO_STORE = {"Cache-Control": "no-store"}


def _newest_first(cards: list[CardView], key: str) -> list[CardView]:
    # Same order as live.js keeps: newest first, id breaking ties.
    def sort_key(card: CardView) -> tuple[float, str]:
        return (parse_iso(getattr(card, key)) or 0.0, card.id)

    return sorted(cards, key=sort_key, reverse=True)


@router.get("/", response_class=HTMLResponse)
def dashboard(
    request: Request, service: ServiceDep, settings: SettingsDep, templates: TemplatesDep
) -> Response:
    if not can_read(request, settings):
        return RedirectResponse("/login", status_code=303, headers=NO_STORE)
    now = service.clock()
    cards = [card_view(render_job(service, job, now), now) for job in service.dashboard_jobs()]
    context: dict[str, Any] = {
        "active_cards": _newest_first([c for c in cards if c.active], "created_iso"),
        "recent_cards": _newest_first([c for c in cards if not c.active], "finished_iso"),
        "blank_card": card_view({}, now),
        "rendered_at": f"{now:.3f}",
    }
    return templates.TemplateResponse(request, "index.html", context, headers=NO_STORE)


def _login_page(
    request: Request, templates: TemplatesDep, error: str | None, status: int
) -> Response:
    return templates.TemplateResponse(
        request, "login.html", {"error": error}, status_code=status, headers=NO_STORE
    )


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, settings: SettingsDep, templates: TemplatesDep) -> Response:
    if can_read(request, settings):
        return RedirectResponse("/", status_code=303)
    return _login_page(request, templates, None, 200)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    settings: SettingsDep,
    templates: TemplatesDep,
    token: Annotated[str, Form(max_length=4096)] = "",
) -> Response:
    # A form another site submits would sign this browser in to a server it never chose.
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return _login_page(request, templates, "Sign in from this server's own page.", 403)
    if not valid_token(settings, token.strip()):
        return _login_page(request, templates, "That token is not this server's.", 401)
    response = RedirectResponse("/", status_code=303, headers=NO_STORE)
    response.set_cookie(
        COOKIE_NAME,
        session_cookie_value(settings),
        max_age=SESSION_DAYS * 86400,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response
