"""FastAPI dependencies as ``Annotated`` aliases; everything hangs off ``app.state``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from trainmon.runner.executor import Executor
from trainmon.server.auth import Authority, check_read, check_write
from trainmon.server.bus import EventBus
from trainmon.server.schemas import Renderer
from trainmon.service import JobService
from trainmon.settings import Settings


def _state(name: str) -> Callable[[Request], Any]:
    """A dependency that gives ``app.state.<name>`` (the alias below names its type)."""

    def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    get.__name__ = f"get_{name}"
    return get


SettingsDep = Annotated[Settings, Depends(_state("settings"))]
ServiceDep = Annotated[JobService, Depends(_state("service"))]
BusDep = Annotated[EventBus, Depends(_state("bus"))]
RenderDep = Annotated[Renderer, Depends(_state("render"))]
TemplatesDep = Annotated[Jinja2Templates, Depends(_state("templates"))]
ExecutorDep = Annotated[Executor, Depends(_state("executor"))]


def require_read(request: Request, settings: SettingsDep) -> None:
    check_read(request, settings)


def require_write(request: Request, settings: SettingsDep) -> Authority:
    return check_write(request, settings)


ReadAccess = Depends(require_read)
WriteAccess = Depends(require_write)
# For a write route that needs to know which proof was given (token or page session).
AuthorityDep = Annotated[Authority, Depends(require_write)]
