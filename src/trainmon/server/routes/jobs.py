"""The job API: parse, call the service, serialise. Paths fixed by docs/API.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from trainmon.errors import ValidationFailed
from trainmon.ingest import IngestQueue
from trainmon.job_query import DEFAULT_SORT, SORT_COLUMNS, QueryError, build_query
from trainmon.models import float_to_json
from trainmon.reporting import LOSS
from trainmon.server.auth import require_token
from trainmon.server.deps import (
    AuthorityDep,
    IngestDep,
    ReadAccess,
    RenderDep,
    ServiceDep,
    WriteAccess,
)
from trainmon.server.schemas import JobCreateIn, ProgressIn, iso, scalars_to_json

router = APIRouter(prefix="/api/training", tags=["jobs"], dependencies=[ReadAccess])

Limit = Annotated[int, Query(ge=1, le=500, description="page size, at most 500")]
SORT_HELP = f"one of {', '.join(SORT_COLUMNS)}; a leading - sorts descending [{DEFAULT_SORT}]"


@router.get("/jobs")
def list_jobs(
    service: ServiceDep,
    render: RenderDep,
    status: Annotated[
        str | None,
        Query(max_length=500, description="comma list of statuses, `active` or `finished`"),
    ] = None,
    tag: Annotated[list[str] | None, Query(description="a tag the job has (repeatable)")] = None,
    q: Annotated[
        str | None,
        Query(max_length=1000, description="text in the name, id, tags or error (any case)"),
    ] = None,
    created_since: Annotated[
        str | None, Query(alias="createdSince", max_length=64, description="ISO 8601")
    ] = None,
    created_until: Annotated[
        str | None, Query(alias="createdUntil", max_length=64, description="ISO 8601")
    ] = None,
    sort: Annotated[str | None, Query(max_length=64, description=SORT_HELP)] = None,
    ids: Annotated[
        str | None, Query(max_length=40_000, description="comma list of job ids (≤ 500)")
    ] = None,
    limit: Limit = 100,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> JSONResponse:
    """Jobs matching every filter given, a page at a time. ``total`` is exact up to 10,000;
    beyond that it says 10,000 and ``totalExact`` is false."""
    try:
        query = build_query(status, tag, q, created_since, created_until, sort, ids)
    except QueryError as exc:
        raise ValidationFailed(str(exc), field=exc.field) from None
    page = service.list_jobs(query, limit, cursor)
    # Rendered jobs are plain JSON already: skipping FastAPI's encoder walk halves the cost of
    # a 100-job page.
    return JSONResponse(
        {
            "jobs": [render(job) for job in page.jobs],
            "total": page.total,
            "totalExact": page.total_exact,
            "nextCursor": page.next_cursor,
        }
    )


@router.get("/status")
def job_status(
    service: ServiceDep, render: RenderDep, job_id: Annotated[str, Query(max_length=200)]
) -> dict[str, Any]:
    return render(service.get_job(job_id))


@router.get("/jobs/{job_id}")
def get_job(service: ServiceDep, render: RenderDep, job_id: str) -> dict[str, Any]:
    return render(service.get_job(job_id))


@router.post("/jobs", status_code=201, dependencies=[WriteAccess])
def create_job(
    service: ServiceDep,
    render: RenderDep,
    authority: AuthorityDep,
    body: JobCreateIn,
    response: Response,
) -> dict[str, Any]:
    if body.command is not None:
        # Running a command is running code as this server's user: the token, never a page.
        require_token(authority, "creating a job with a command")
    job, created = service.create_job(body.to_spec())
    if not created:
        response.status_code = 200
    return render(job)


@router.post("/jobs/{job_id}/cancel", dependencies=[WriteAccess])
def cancel_job(
    service: ServiceDep, render: RenderDep, authority: AuthorityDep, job_id: str
) -> dict[str, Any]:
    # The CLI and scripts send the bearer token; the dashboard page its session and CSRF token.
    source = "api" if authority.kind == "token" else "dashboard"
    return render(service.cancel(job_id, source))


@router.delete("/jobs/{job_id}", dependencies=[WriteAccess])
def delete_job(service: ServiceDep, job_id: str) -> dict[str, Any]:
    """Remove a finished job with its points and log; 409 while it is active."""
    service.delete(job_id)
    return {"id": job_id, "deleted": True}


# The ingest hot path reads the raw body and validates it in one pass from JSON (Pydantic's
# Rust parser), half the cost of FastAPI's json.loads + validate; the schema stays documented.
PROGRESS_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ProgressIn"}}},
    }
}


@router.post("/jobs/{job_id}/progress", dependencies=[WriteAccess], openapi_extra=PROGRESS_BODY)
async def report_progress(
    service: ServiceDep, ingest: IngestDep, job_id: str, request: Request
) -> dict[str, Any]:
    """Answered once the batch is committed (stored with others waiting, in one transaction:
    ingest.py); 503 with Retry-After when too many reports are waiting to be stored. Requests
    with the bearer token take a shorter way to the same function (server/fast_ingest.py)."""
    return await accept_report(ingest, service.clock, job_id, await request.body())


async def accept_report(
    ingest: IngestQueue, clock: Callable[[], float], job_id: str, body: bytes
) -> dict[str, Any]:
    """A progress batch from its raw body to the reporter's answer, after the commit."""
    try:
        batch = ProgressIn.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    result = await ingest.submit(job_id, batch.to_report(clock()))
    return {
        "applied": result.applied,
        "cancelRequested": result.job.cancel_requested,
        "status": result.job.status.value,
    }


@router.get("/jobs/{job_id}/metrics")
def job_metrics(
    service: ServiceDep,
    job_id: str,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> dict[str, Any]:
    found = service.points(job_id, after, limit)
    return {
        "jobId": job_id,
        "points": [
            {
                "seq": p.seq,
                "step": p.step,
                "time": p.time,
                "at": iso(p.time),
                "loss": float_to_json(p.values.get(LOSS)),
                "metrics": scalars_to_json({k: v for k, v in p.values.items() if k != LOSS}),
            }
            for p in found
        ],
        "nextAfter": found[-1].seq if len(found) == limit else None,
    }
