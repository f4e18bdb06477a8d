"""The dashboard page's CSRF token: readable only by a same-origin page (no CORS headers)."""

from __future__ import annotations

from fastapi import APIRouter

from trainmon.server.auth import csrf_token
from trainmon.server.deps import ReadAccess, SettingsDep

router = APIRouter(prefix="/api/auth", tags=["auth"], dependencies=[ReadAccess])


@router.get("/csrf")
def get_csrf(settings: SettingsDep) -> dict[str, str]:
    return {"csrfToken": csrf_token(settings)}
