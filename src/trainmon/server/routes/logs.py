"""A runner job's log: the last lines, what came after a byte offset (for ``trainmon logs -f``),
or the whole file, read through this server's executor (``runner/executor.py``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from trainmon.server.deps import ExecutorDep, ReadAccess, ServiceDep

router = APIRouter(prefix="/api/training", tags=["logs"], dependencies=[ReadAccess])


@router.get("/jobs/{job_id}/logs")
def job_logs(
    service: ServiceDep,
    executor: ExecutorDep,
    job_id: str,
    tail: Annotated[int, Query(ge=0, le=10_000, description="last N lines")] = 100,
    offset: Annotated[
        int | None,
        Query(ge=0, le=2**62, description="instead of the tail: the text after this byte offset"),
    ] = None,
) -> dict[str, Any]:
    """``{"lines", "size"}``; with ``offset``, ``{"text", "offset", "size"}`` where ``offset``
    is where to ask next. ``size`` counts every byte the job logged. Lines are shown as a
    terminal would: the last ``\\r`` redraw, no colour codes."""
    log = executor.logs(service.get_job(job_id))  # NotFound -> 404
    if offset is not None:
        text, next_offset, size = log.after(offset)
        return {"text": text, "offset": next_offset, "size": size}
    lines, size = log.tail(tail)
    return {"lines": lines, "size": size}


@router.get("/jobs/{job_id}/logs/download")
def download_log(service: ServiceDep, executor: ExecutorDep, job_id: str) -> StreamingResponse:
    job = service.get_job(job_id)
    return StreamingResponse(
        executor.logs(job).chunks(),
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{job.id}.log"'},
    )
