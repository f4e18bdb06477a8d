"""FastAPI dependencies as ``Annotated`` aliases; everything hangs off ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from trainmon.server.auth import Authority, check_read, check_write
from trainmon.server.bus import EventBus
from trainmon.server.schemas import Renderer
from trainmon.service import JobService
from trainmon.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_service(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


def get_bus(request: Request) -> EventBus:
    bus: EventBus = request.app.state.bus
    return bus


def get_renderer(request: Request) -> Renderer:
    renderer: Renderer = request.app.state.render
    return renderer


def get_templates(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.templates
    return templates


def require_read(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    check_read(request, settings)


def require_write(
    request: Request, settings: Annotated[Settings, Depends(get_settings)]
) -> Authority:
    return check_write(request, settings)


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[JobService, Depends(get_service)]
BusDep = Annotated[EventBus, Depends(get_bus)]
RenderDep = Annotated[Renderer, Depends(get_renderer)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]
ReadAccess = Depends(require_read)
WriteAccess = Depends(require_write)
# For a write route that needs to know which proof was given (token or page session).
AuthorityDep = Annotated[Authority, Depends(require_write)]
