"""The app factory. Nothing is created at import: the store, bus, service and executor are
made in the lifespan and hang off ``app.state``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Scope

from trainmon.ingest import IngestQueue
from trainmon.models import Change, Deleted, Subscriber
from trainmon.runner.executor import executor_factory, executor_hooks
from trainmon.server.bus import EventBus
from trainmon.server.errors import install_error_handlers
from trainmon.server.fast_ingest import IngestFastPath
from trainmon.server.middleware import GuardMiddleware
from trainmon.server.routes import auth, docs, events, executors, health, jobs, logs, pages
from trainmon.server.schemas import ProgressIn, Renderer
from trainmon.server.sessions import FailureLimiter, SessionBook, SignInLinks
from trainmon.service import JobService
from trainmon.settings import Settings
from trainmon.store import Store

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"


@cache
def static_version() -> str:
    """A hash of every packaged asset. Versioning the directory, not each file, keeps the
    relative imports between ES modules (``./format.js``) on the same version."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(STATIC_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def static_url(path: str) -> str:
    return f"/static/{static_version()}/{path}"


class ImmutableStaticFiles(StaticFiles):
    """The URL changes whenever any asset does, so browsers may keep each one for good."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def make_templates() -> Jinja2Templates:
    # Autoescape everything, whatever the file name: Starlette's default only covers .html.
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True)
    env.globals["static_url"] = static_url
    return Jinja2Templates(env=env)


def _publisher(bus: EventBus, render: Renderer) -> Subscriber:
    """Committed changes to the bus, as the JSON every reader gets."""

    def publish(change: Change) -> None:
        if isinstance(change, Deleted):
            bus.publish({"id": change.job_id, "deleted": True})
        else:
            bus.publish(render(change))

    return publish


async def _watch_liveness(
    service: JobService, started: float, period: float, stop: asyncio.Event
) -> None:
    """Fail jobs that lost contact, and tell viewers when a running job turns stale. Each round
    reads only jobs past a deadline (an index range), so it costs the same at 10 jobs or 100k.
    Stops between rounds (not by cancel), so no database call is cut off while the store
    closes."""
    stale_line: float | None = None
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period)
        if stop.is_set():
            return
        try:  # a database hiccup must not end the watcher, nor pass unseen
            await run_in_threadpool(service.reap_lost_contact, started)
            stale_line = await run_in_threadpool(service.announce_newly_stale, stale_line)
        except Exception:
            log.exception("liveness check failed; retrying in %g s", period)


async def _housekeep(
    service: JobService, settings: Settings, started: float, stop: asyncio.Event
) -> None:
    """Retention: delete jobs past ``keep_days`` and fail pending jobs that never reported.
    A round at startup, then one every ``housekeeping_interval``; stops between rounds."""
    period = settings.housekeeping_interval
    while True:
        try:
            if settings.keep_days is not None:
                await run_in_threadpool(service.prune_finished, settings.keep_days * 86400)
            await run_in_threadpool(service.expire_pending, settings.pending_timeout, started)
        except Exception:
            log.exception("housekeeping failed; retrying in %g s", period)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period)
        if stop.is_set():
            return


def _document_raw_bodies(app: FastAPI) -> None:
    """Routes that parse their own body (the progress hot path) still show its schema."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, routes=app.routes, summary=app.summary
            )
            body = ProgressIn.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(body.pop("$defs", {}))
            components["ProgressIn"] = body
            # /docs' "Authorize" takes the write token; reads on loopback need none.
            schema["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "the write token"}
            }
            schema["security"] = [{}, {"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings, *, start_executor: bool | None = None) -> FastAPI:
    if start_executor is not None:
        settings = dataclasses.replace(settings, run_executor=start_executor)
    run_executor = settings.run_executor

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.database_url)
        await run_in_threadpool(store.migrate)
        bus = EventBus(asyncio.get_running_loop())
        service = JobService(
            store,
            heartbeat_interval=settings.heartbeat_interval,
            lost_contact_timeout=settings.lost_contact_timeout,
            max_metric_keys=settings.max_metric_keys,
            command_executor=settings.executor,
        )
        render = Renderer(settings.heartbeat_interval, service.clock)
        service.subscribe(_publisher(bus, render))
        # Built even when it runs nothing here (--no-executor): logs are read through it.
        executor = executor_factory(settings.executor)(service, settings)
        service.subscribe(executor_hooks(executor))
        app.state.store, app.state.bus, app.state.service = store, bus, service
        app.state.render, app.state.executor = render, executor
        app.state.sessions = SessionBook(store, settings)
        ingest = app.state.ingest = IngestQueue(service, max_pending=settings.max_pending_reports)
        ingest.start()
        if run_executor:
            executor.start()
        period = max(0.2, min(1.0, settings.heartbeat_interval / 4))
        stop = asyncio.Event()
        watcher = asyncio.create_task(_watch_liveness(service, time.time(), period, stop))
        housekeeper = asyncio.create_task(_housekeep(service, settings, time.time(), stop))
        try:
            yield
        finally:
            stop.set()
            await watcher
            await housekeeper
            await run_in_threadpool(ingest.stop)  # what is waiting is stored first
            if run_executor:
                await run_in_threadpool(executor.stop)
            store.dispose()

    app = FastAPI(
        title="trainmon",
        summary="Real-time monitor and runner for ML training jobs",
        lifespan=lifespan,
        # The reference is served from the package (routes/docs.py): FastAPI's loads a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.sign_in_links = SignInLinks()
    app.state.login_limiter = FailureLimiter()
    app.state.templates = make_templates()
    install_error_handlers(app)
    for router in (
        health.router,
        pages.router,
        jobs.router,
        events.router,
        logs.router,
        executors.router,
        auth.router,
        docs.router,
    ):
        app.include_router(router)
    _document_raw_bodies(app)
    app.mount(
        f"/static/{static_version()}",
        ImmutableStaticFiles(directory=STATIC_DIR, check_dir=False),
        name="static",
    )
    app.add_middleware(IngestFastPath)  # inside the guard: added first
    app.add_middleware(
        GuardMiddleware, host_names=settings.host_names(), max_body=settings.max_body_bytes
    )
    return app
