"""How a reporter's batch changes a job. Pure: the caller passes ``now``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from trainmon.models import Job, JobStatus, Point, check_transition

LOSS = "loss"


@dataclass(frozen=True, slots=True)
class ProgressReport:
    reporter: str
    seq: int
    points: list[Point] = field(default_factory=list)
    status: JobStatus | None = None
    error: str | None = None
    exit_code: int | None = None
    end_reason: str | None = None
    current_step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    source: str = "sdk"  # "output": parsed from a job's tqdm output by its supervisor


DEFAULT_MAX_METRIC_KEYS = 1_000


def batch_metric_keys(points: list[Point]) -> set[str]:
    """The metric names a batch carries (``loss`` is the job's own field, not a metric)."""
    keys: set[str] = set()
    for point in points:
        keys.update(point.values)
    keys.discard(LOSS)
    return keys


def metric_keys_after(known: dict[str, float], batch_keys: set[str]) -> int:
    """How many distinct metric keys a job would have: its ``metrics`` dict holds the latest
    value of every key it reported, so its keys are the ones seen so far."""
    return len(known) + sum(1 for key in batch_keys if key not in known)


def apply_report(job: Job, report: ProgressReport, now: float) -> Job:
    """The job after ``report``. Raises ``Conflict`` for an illegal status change on an active
    job; a finished job keeps its status (late points from a journal are still stored)."""
    from_output = report.source == "output"
    # Once an SDK reports, its numbers win over what the supervisor parses from the output.
    progress_allowed = not (from_output and job.sdk_attached)
    step, loss, metrics = job.current_step, job.current_loss, job.metrics
    if progress_allowed:
        if report.points:
            metrics = dict(metrics)
            for point in report.points:
                if point.step is not None:
                    step = point.step
                for key, value in point.values.items():
                    if key == LOSS:
                        loss = value
                    else:
                        metrics[key] = value
        if report.current_step is not None:
            step = report.current_step
        if report.loss is not None:
            loss = report.loss
    total = job.total_steps
    if progress_allowed and report.total_steps is not None:
        total = report.total_steps
    updated = replace(
        job,
        current_step=step,
        step_at=now if step != job.current_step else job.step_at,
        total_steps=total,
        current_loss=loss,
        metrics=metrics,
        last_seen_at=now,
        updated_at=now,
        sdk_attached=job.sdk_attached or report.source == "sdk",
        point_count=job.point_count + len(report.points),
    )
    if job.status.is_terminal:
        return late_facts(updated, report)
    if report.status is None or report.status is job.status:
        return updated
    end_reason = report.end_reason
    if report.status is JobStatus.CANCELLED:
        end_reason = cancel_reason(job.cancel_source, end_reason)
    return transition(
        updated,
        report.status,
        now,
        error=report.error,
        exit_code=report.exit_code,
        end_reason=end_reason,
    )


CANCEL_SOURCES = {"api": "via the API", "dashboard": "from the dashboard"}


def cancel_reason(source: str | None, how: str | None) -> str | None:
    """``cancelled via the API: SIGTERM after cancel``: who cancelled, then how it ended.
    ``how`` alone when the source is unknown (a job cancelled before sources were kept)."""
    if source is None or (how is not None and how.startswith("cancelled")):
        return how
    who = f"cancelled {CANCEL_SOURCES.get(source, 'by ' + source)}"
    if how is None:
        return who
    return f"{who} {how}" if how == "before start" else f"{who}: {how}"


def late_facts(job: Job, report: ProgressReport) -> Job:
    """What a report about an already finished job still adds: the status stays the one the
    first terminal report set (terminal states are final), but how the process ended lands.

    Precedence: the supervisor (``source == "output"``) watched the process exit, so its exit
    code and end reason replace what an SDK said; an SDK's (or any later reporter's) fill in
    only what is still missing. An error is never replaced, only filled in on a failed job:
    the first one (an SDK's traceback, say) says most about why."""
    if report.exit_code is None and report.end_reason is None and report.error is None:
        return job
    from_process = report.source == "output"
    exit_code, end_reason = job.exit_code, job.end_reason
    if report.exit_code is not None and (from_process or exit_code is None):
        exit_code = report.exit_code
    if report.end_reason is not None and (from_process or end_reason is None):
        end_reason = report.end_reason
        if job.status is JobStatus.CANCELLED:
            end_reason = cancel_reason(job.cancel_source, end_reason)
    return replace(
        job,
        exit_code=exit_code,
        end_reason=end_reason,
        error=report.error if job.error is None and job.status is JobStatus.FAILED else job.error,
    )


def transition(
    job: Job,
    target: JobStatus,
    now: float,
    *,
    error: str | None = None,
    exit_code: int | None = None,
    end_reason: str | None = None,
) -> Job:
    """Move ``job`` to ``target`` (``Conflict`` if illegal), stamping start and finish times."""
    check_transition(job.status, target)
    started = job.started_at
    if target is JobStatus.RUNNING and started is None:
        started = now
    finished = now if target.is_terminal else None
    return replace(
        job,
        status=target,
        started_at=started,
        finished_at=finished,
        updated_at=now,
        error=error if error is not None else job.error,
        exit_code=exit_code if exit_code is not None else job.exit_code,
        end_reason=end_reason if end_reason is not None else job.end_reason,
    )
