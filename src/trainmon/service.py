"""The one write path: validation and state transitions over the store. Every change commits
first, then is handed to ``on_change`` (the event bus), so viewers never see half a change."""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlalchemy import Connection

from trainmon.errors import BadRequest, Conflict, NotFound
from trainmon.models import ACTIVE, Command, Job, JobStatus, is_job_id, is_stale
from trainmon.reporting import ProgressReport, apply_report, transition
from trainmon.store import Store, StoredPoint

Clock = Callable[[], float]
ChangeHook = Callable[[Job], None]

RECENT_SECONDS = 3600.0  # finished jobs stay on the dashboard this long


@dataclass(frozen=True, slots=True)
class JobCreate:
    name: str
    total_steps: int | None = None
    config: dict[str, object] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    id: str | None = None
    command: Command | None = None
    grace_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class Page:
    jobs: list[Job]
    total: int
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ReportResult:
    applied: bool
    job: Job


def encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at, job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Inverse of ``encode_cursor``; ``BadRequest`` for anything a client made up."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        if isinstance(created, bool) or not isinstance(created, int | float):
            raise ValueError(created)
        if not math.isfinite(created) or not isinstance(job_id, str) or not is_job_id(job_id):
            raise ValueError(job_id)
        return float(created), job_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadRequest(
            "invalid cursor: pass back the nextCursor of a previous page", field="cursor"
        ) from None


class JobService:
    def __init__(
        self,
        store: Store,
        *,
        clock: Clock = time.time,
        on_change: ChangeHook | None = None,
        heartbeat_interval: float = 10.0,
        lost_contact_timeout: float = 60.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.on_change = on_change
        self.heartbeat_interval = heartbeat_interval
        self.lost_contact_timeout = lost_contact_timeout

    def _publish(self, job: Job) -> None:
        if self.on_change is not None:
            self.on_change(job)

    # -- reads --------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job:
        with self.store.read() as conn:
            job = self._find(conn, job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id!r}")
        return job

    def _find(self, conn: Connection, job_id: str, *, lock: bool = False) -> Job | None:
        # An id no job can have (NUL, 1 MB) never reaches the database, which may choke on it.
        return self.store.get_job(conn, job_id, lock=lock) if is_job_id(job_id) else None

    def list_jobs(
        self, statuses: frozenset[JobStatus] | None, limit: int = 100, cursor: str | None = None
    ) -> Page:
        after = decode_cursor(cursor) if cursor else None
        with self.store.read() as conn:
            found, total = self.store.list_jobs(conn, statuses, limit + 1, after)
        more = len(found) > limit
        found = found[:limit]
        return Page(found, total, encode_cursor(found[-1]) if more and found else None)

    def dashboard_jobs(self) -> list[Job]:
        """Active jobs, then the ones that finished in the last hour (newest first)."""
        with self.store.read() as conn:
            active, _ = self.store.list_jobs(conn, ACTIVE, 10_000, None)
            recent = self.store.finished_since(conn, self.clock() - RECENT_SECONDS)
        return active + recent

    def points(self, job_id: str, after: int | None, limit: int) -> list[StoredPoint]:
        with self.store.read() as conn:
            if self._find(conn, job_id) is None:
                raise NotFound(f"no job with id {job_id!r}")
            return self.store.read_points(conn, job_id, after, limit)

    def is_stale(self, job: Job, now: float) -> bool:
        return is_stale(job.status, job.last_seen_at, now, self.heartbeat_interval)

    # -- writes -------------------------------------------------------------------------

    def create_job(self, spec: JobCreate) -> tuple[Job, bool]:
        """Create a job; repeating a create with the same id returns the first (``False``)."""
        now = self.clock()
        job = Job(
            id=spec.id or uuid.uuid4().hex[:12],
            name=spec.name,
            status=JobStatus.QUEUED if spec.command is not None else JobStatus.PENDING,
            created_at=now,
            updated_at=now,
            total_steps=spec.total_steps,
            config=spec.config,
            tags=spec.tags,
            command=spec.command,
            grace_seconds=spec.grace_seconds,
            executor="local" if spec.command is not None else "sdk",
        )
        with self.store.write() as conn:
            existing = self.store.get_job(conn, job.id, lock=True)
            if existing is not None:
                if existing.name != spec.name:
                    raise Conflict(f"job id {job.id!r} is taken by another job", field="id")
                return existing, False
            self.store.insert_job(conn, job)
        self._publish(job)
        return job, True

    def cancel(self, job_id: str) -> Job:
        """Pending and queued jobs end at once; a running one is asked to stop."""
        now = self.clock()
        with self.store.write() as conn:
            job = self._locked(conn, job_id)
            if job.status.is_terminal:
                raise Conflict(f"job {job_id!r} is already {job.status.value}")
            job = replace(job, cancel_requested=True, updated_at=now)
            if job.status is not JobStatus.RUNNING:
                job = transition(job, JobStatus.CANCELLED, now, end_reason="cancelled before start")
            self.store.save_job(conn, job)
        self._publish(job)
        return job

    def report(self, job_id: str, report: ProgressReport) -> ReportResult:
        """Apply one reporter batch in one transaction, once per ``(reporter, seq)``."""
        now = self.clock()
        with self.store.write() as conn:
            job = self._locked(conn, job_id)
            if not self.store.claim_batch(conn, job_id, report.reporter, report.seq):
                return ReportResult(False, job)
            updated = apply_report(job, report, now)
            self.store.insert_points(
                conn,
                job_id,
                job.point_count + 1,
                report.points,
            )
            self.store.save_job(conn, updated)
        self._publish(updated)
        return ReportResult(True, updated)

    def _locked(self, conn: Connection, job_id: str) -> Job:
        job = self._find(conn, job_id, lock=True)
        if job is None:
            raise NotFound(f"no job with id {job_id!r}")
        return job

    def _change(self, job_id: str, change: Callable[[Job], Job]) -> Job:
        with self.store.write() as conn:
            job = change(self._locked(conn, job_id))
            self.store.save_job(conn, job)
        self._publish(job)
        return job

    # -- the local executor's hooks -----------------------------------------------------

    def claim_next_queued(self) -> Job | None:
        with self.store.read() as conn:
            found = self.store.jobs_in(conn, JobStatus.QUEUED, executor="local", limit=1)
        return found[0] if found else None

    def mark_launched(self, job_id: str, pid: int, pid_start: int) -> Job:
        """queued -> running with its supervisor; ``Conflict`` if it was cancelled meanwhile."""
        now = self.clock()
        return self._change(
            job_id,
            lambda job: replace(
                transition(job, JobStatus.RUNNING, now),
                supervisor_pid=pid,
                supervisor_start=pid_start,
                last_seen_at=now,
            ),
        )

    def running_jobs(self) -> list[Job]:
        with self.store.read() as conn:
            return self.store.jobs_in(conn, JobStatus.RUNNING)

    def running_local_jobs(self) -> list[Job]:
        with self.store.read() as conn:
            return self.store.jobs_in(conn, JobStatus.RUNNING, executor="local")

    def count_running_local(self) -> int:
        with self.store.read() as conn:
            return self.store.count_in(conn, JobStatus.RUNNING, executor="local")

    def fail(self, job_id: str, error: str, exit_code: int | None = None) -> Job:
        now = self.clock()
        return self._change(
            job_id,
            lambda job: transition(job, JobStatus.FAILED, now, error=error, exit_code=exit_code),
        )

    # -- liveness -----------------------------------------------------------------------

    def reap_lost_contact(self, alive_since: float) -> list[Job]:
        """Fail running jobs silent for longer than the timeout. ``alive_since`` is when this
        server started: a reporter cannot have reached a server that was down."""
        failed: list[Job] = []
        # Only a job already silent in this read takes the write lock (this runs every second,
        # beside ingest), and the check is repeated under the lock in case it just reported.
        for candidate in self.running_jobs():
            if self._silence(candidate, self.clock(), alive_since) <= self.lost_contact_timeout:
                continue
            with self.store.write() as conn:
                job = self.store.get_job(conn, candidate.id, lock=True)
                now = self.clock()
                if job is None or job.status is not JobStatus.RUNNING:
                    continue  # it finished while we looked
                silent = self._silence(job, now, alive_since)
                if silent <= self.lost_contact_timeout:
                    continue
                message = f"lost contact: no report from the training for {int(silent)} s"
                job = transition(job, JobStatus.FAILED, now, error=message)
                self.store.save_job(conn, job)
            self._publish(job)
            failed.append(job)
        return failed

    @staticmethod
    def _silence(job: Job, now: float, alive_since: float) -> float:
        return now - max(job.last_seen_at or job.started_at or job.created_at, alive_since)
