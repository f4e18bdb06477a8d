"""FastAPI dependencies as ``Annotated`` aliases; everything hangs off ``app.state``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from trainmon.ingest import IngestQueue
from trainmon.runner.executor import Executor
from trainmon.server.auth import Authority, bearer, check_read, check_write, valid_token
from trainmon.server.bus import EventBus
from trainmon.server.schemas import Renderer
from trainmon.service import JobService
from trainmon.settings import Settings


def _state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency that gives ``app.state.<name>`` (the alias below names its type). Async
    because it does not block: FastAPI runs a plain ``def`` dependency on a worker thread,
    two thread hops per request on the ingest path."""

    async def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    get.__name__ = f"get_{name}"
    return get


SettingsDep = Annotated[Settings, Depends(_state("settings"))]
ServiceDep = Annotated[JobService, Depends(_state("service"))]
BusDep = Annotated[EventBus, Depends(_state("bus"))]
RenderDep = Annotated[Renderer, Depends(_state("render"))]
TemplatesDep = Annotated[Jinja2Templates, Depends(_state("templates"))]
ExecutorDep = Annotated[Executor, Depends(_state("executor"))]
IngestDep = Annotated[IngestQueue, Depends(_state("ingest"))]


# A bearer token is checked on the event loop; a browser session is looked up in the database,
# on a worker thread.
async def require_read(request: Request, settings: SettingsDep) -> None:
    if not settings.reads_need_token or valid_token(settings, bearer(request)):
        return
    await run_in_threadpool(check_read, request, settings)


async def require_write(request: Request, settings: SettingsDep) -> Authority:
    if bearer(request) is not None:
        return check_write(request, settings)
    return await run_in_threadpool(check_write, request, settings)


ReadAccess = Depends(require_read)
WriteAccess = Depends(require_write)
# For a write route that needs to know which proof was given (token or page session).
AuthorityDep = Annotated[Authority, Depends(require_write)]
