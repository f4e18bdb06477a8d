"""``GET /api/training/events``: Server-Sent Events of job changes, per docs/API.md.

A snapshot first, then one ``job`` event per changed job. The bus keeps only the newest
version of each job for a subscriber until it reads, so pausing ``COALESCE_SECONDS`` after each
send caps what a viewer repaints (a job logging 1,000 steps/s reaches the page a few times a
second) without ever dropping a final state. Every connection, including a browser's
reconnect with ``Last-Event-ID``, starts with a fresh snapshot: simpler than replaying, and
a reconnect after a long outage needs the whole picture anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from trainmon.errors import ServerBusy
from trainmon.server.bus import EventBus, to_json
from trainmon.server.deps import BusDep, ReadAccess, RenderDep, ServiceDep, SettingsDep
from trainmon.server.limits import RETRY_AFTER_SECONDS, EventStreamSlots, event_stream_slots
from trainmon.server.schemas import Renderer
from trainmon.service import JobService

router = APIRouter(prefix="/api/training", tags=["events"], dependencies=[ReadAccess])

COALESCE_SECONDS = 0.15
PING_SECONDS = 15.0
RETRY_MS = 2000  # how soon a browser reconnects after a drop

STREAM_HEADERS = {
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx would otherwise hold events back in its buffer
}


def frame(event: str, payload: str, event_id: int) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {payload}\n\n"


def snapshot(service: JobService, render: Renderer) -> dict[str, Any]:
    """The live sections' jobs (bounded) and how many active jobs there are in all."""
    now = service.clock()
    board = service.dashboard()
    jobs = [render(job, now) for job in board.active + board.recent]
    return {"jobs": jobs, "activeTotal": board.active_total}


async def stream(
    service: JobService,
    render: Renderer,
    bus: EventBus,
    coalesce: float = COALESCE_SECONDS,
    ping: float = PING_SECONDS,
) -> AsyncIterator[str]:
    # Subscribe before reading the snapshot so no change can fall between the two; a change
    # seen twice is harmless (the page ignores versions older than the one it shows).
    async with bus.subscribe() as subscription:
        first = await run_in_threadpool(snapshot, service, render)
        yield f"retry: {RETRY_MS}\n" + frame("snapshot", to_json(first), bus.last_id)
        while True:
            try:
                changed = await asyncio.wait_for(subscription.get(), ping)
            except TimeoutError:
                yield ": ping\n\n"
                continue
            event_id = bus.last_id
            # A deleted job is published as {"id", "deleted": true}: newest wins, as for updates.
            yield "".join(frame(c.kind, c.text(), event_id) for c in changed)
            await asyncio.sleep(coalesce)


class CountedStream(StreamingResponse):
    """An event stream that gives its slot back however it ends: a viewer leaving, a send
    failing before the first event, or the server shutting down."""

    def __init__(self, slots: EventStreamSlots, content: AsyncIterator[str]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=STREAM_HEADERS)
        self.slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slots.give_back()


@router.get("/events", response_model=None)
async def events(
    request: Request, service: ServiceDep, render: RenderDep, bus: BusDep, settings: SettingsDep
) -> StreamingResponse | JSONResponse:
    slots = event_stream_slots(request.app.state, settings.max_event_streams)
    if not slots.take():
        busy = ServerBusy(f"more than {slots.limit} open event streams; retry shortly")
        return JSONResponse(
            busy.to_json(),
            status_code=busy.status,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return CountedStream(slots, stream(service, render, bus))
