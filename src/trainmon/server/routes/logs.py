"""A runner job's log: the last lines, what came after a byte offset (for ``trainmon logs -f``),
or the whole file. Reads only; the supervisor writes the file."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from trainmon.runner.logfile import iter_all, log_path, read_after, tail_lines
from trainmon.server.deps import ReadAccess, ServiceDep, SettingsDep

router = APIRouter(prefix="/api/training", tags=["logs"], dependencies=[ReadAccess])


@router.get("/jobs/{job_id}/logs")
def job_logs(
    service: ServiceDep,
    settings: SettingsDep,
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
    job = service.get_job(job_id)  # NotFound -> 404
    path = log_path(settings.data_dir, job.id)
    if offset is not None:
        text, next_offset, size = read_after(path, offset)
        return {"text": text, "offset": next_offset, "size": size}
    lines, size = tail_lines(path, tail)
    return {"lines": lines, "size": size}


@router.get("/jobs/{job_id}/logs/download")
def download_log(service: ServiceDep, settings: SettingsDep, job_id: str) -> StreamingResponse:
    job = service.get_job(job_id)
    return StreamingResponse(
        iter_all(log_path(settings.data_dir, job.id)),
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{job.id}.log"'},
    )
