"""The interactive API reference, served from the package (FastAPI's default loads a CDN)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from trainmon.server.deps import TemplatesDep

router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request, templates: TemplatesDep) -> Response:
    return templates.TemplateResponse(request, "docs.html", {})
