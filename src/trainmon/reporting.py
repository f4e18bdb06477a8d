"""How a reporter's batch changes a job. Pure: the caller passes ``now``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from trainmon.models import Job, JobStatus, check_transition

LOSS = "loss"


@dataclass(frozen=True, slots=True)
class Point:
    step: int | None
    time: float
    values: dict[str, float]  # "loss" and every other named scalar


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
        total_steps=total,
        current_loss=loss,
        metrics=metrics,
        last_seen_at=now,
        updated_at=now,
        sdk_attached=job.sdk_attached or report.source == "sdk",
        point_count=job.point_count + len(report.points),
    )
    if report.status is None or job.status.is_terminal or report.status is job.status:
        return updated
    return transition(
        updated,
        report.status,
        now,
        error=report.error,
        exit_code=report.exit_code,
        end_reason=report.end_reason,
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
