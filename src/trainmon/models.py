"""Job statuses and the state machine. Pure: no I/O, no clock."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from trainmon.errors import Conflict


class JobStatus(str, Enum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_active(self) -> bool:
        return self in ACTIVE

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


# Job ids: 12 hex characters when the server picks one; a client may propose its own.
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{5,63}$"
_JOB_ID = re.compile(JOB_ID_PATTERN)


def is_job_id(value: str) -> bool:
    return _JOB_ID.match(value) is not None


ACTIVE = frozenset({JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING})
TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

# Every legal move. A script that reports on its own goes pending -> running directly.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset(
        {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}
    ),
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    return target in TRANSITIONS[current]


def check_transition(current: JobStatus, target: JobStatus) -> None:
    """Raise ``Conflict`` unless ``current -> target`` is legal."""
    if not can_transition(current, target):
        if current.is_terminal:
            raise Conflict(f"job is already {current.value}; it cannot become {target.value}")
        raise Conflict(f"a {current.value} job cannot become {target.value}")


def derive_progress(current_step: int | None, total_steps: int | None) -> float | None:
    """Percent done from steps, clamped to 0-100; ``None`` when it cannot be known."""
    if current_step is None or not total_steps or total_steps <= 0:
        return None
    return max(0.0, min(100.0, 100.0 * current_step / total_steps))


STALE_HEARTBEATS = 2  # a running job that missed this many heartbeats is shown as stale


def is_stale(
    status: JobStatus, last_seen: float | None, now: float, heartbeat_interval: float
) -> bool:
    """A running job whose reporter has missed two heartbeats."""
    if status is not JobStatus.RUNNING or last_seen is None:
        return False
    return now - last_seen > STALE_HEARTBEATS * heartbeat_interval


# JSON has no NaN or infinities; a diverged loss travels as these strings.
_SPECIAL_OUT = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def float_to_json(value: float | None) -> float | str | None:
    if value is None:
        return None
    if math.isfinite(value):
        return value
    return _SPECIAL_OUT[repr(value)]


@dataclass(frozen=True, slots=True)
class Command:
    """What the local executor runs for a job."""

    argv: tuple[str, ...]
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Job:
    """One stored job. Times are Unix seconds (UTC); the API renders them as ISO 8601."""

    id: str
    name: str
    status: JobStatus
    created_at: float
    updated_at: float
    current_step: int | None = None
    total_steps: int | None = None
    current_loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None
    last_seen_at: float | None = None
    cancel_requested: bool = False
    exit_code: int | None = None
    error: str | None = None
    end_reason: str | None = None  # how the process ended: exit code, or signal and grace
    executor: str = "sdk"
    config: dict[str, object] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    command: Command | None = None
    grace_seconds: float = 10.0
    supervisor_pid: int | None = None
    supervisor_start: int | None = None  # /proc start time, so a reused PID is not taken for it
    sdk_attached: bool = False  # once an SDK reports, parsed tqdm output is ignored
    point_count: int = 0  # points stored in its history
    training_pgid: int | None = None  # the command's process group, killed if it is orphaned
    cancel_source: str | None = None  # who asked for the cancel: "api" or "dashboard"
    step_at: float | None = None  # when current_step last changed: a stalled loop shows

    @property
    def progress(self) -> float:
        # A loop reporting steps 0..n-1 has done all n when it completes.
        if self.status is JobStatus.COMPLETED:
            return 100.0
        return derive_progress(self.current_step, self.total_steps) or 0.0


@dataclass(frozen=True, slots=True)
class Point:
    """One reported point: its step, when, and every named scalar ("loss" among them)."""

    step: int | None
    time: float
    values: dict[str, float]


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """A point as stored: ``seq`` numbers a job's points from 1, a cursor for reading pages."""

    seq: int
    step: int | None
    time: float
    values: dict[str, float]


@dataclass(frozen=True, slots=True)
class Deleted:
    """A job and all it had are gone (deleted or pruned)."""

    job_id: str


# What the service's subscribers hear, after the commit: a job as it now is, or that it is gone.
Change = Job | Deleted
Subscriber = Callable[[Change], None]
