"""The one write path: validation and state transitions over the store. Every change commits
first, then is handed to every subscriber (the event bus), so viewers never see half a
change."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from trainmon.errors import BadRequest, Conflict, NotFound, TrainmonError, ValidationFailed
from trainmon.job_query import JobQuery, QueryError, decode_cursor, encode_cursor
from trainmon.models import (
    ACTIVE,
    STALE_HEARTBEATS,
    TERMINAL,
    Change,
    Command,
    Deleted,
    Job,
    JobStatus,
    StoredPoint,
    Subscriber,
    is_job_id,
    is_stale,
)
from trainmon.reporting import (
    DEFAULT_MAX_METRIC_KEYS,
    ProgressReport,
    apply_report,
    batch_metric_keys,
    cancel_reason,
    metric_keys_after,
    transition,
)
from trainmon.store import Store
from trainmon.store.store import encode_chunk

Clock = Callable[[], float]


ALL_JOBS = JobQuery()
PRUNE_BATCH = 100  # jobs deleted per transaction: ingest never waits long for the write lock


def format_duration(seconds: float) -> str:
    """``86400`` -> ``"24 h"``, ``1800`` -> ``"30 min"``, ``90`` -> ``"90 s"``."""
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


# The dashboard's live sections stay this size whatever the number of jobs (the page is told,
# index.html <main>, and live.js keeps to them): the newest active jobs as cards, and the last
# finished ones. The table below the sections pages through everything.
ACTIVE_SHOWN = 12
RECENT_SHOWN = 20
ACTIVE_JOBS = JobQuery(statuses=ACTIVE)
RECENT_JOBS = JobQuery(statuses=TERMINAL, sort="finishedAt")


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
    total: int  # exact if total_exact, else "at least this many"
    total_exact: bool
    next_cursor: str | None


# A list counts its jobs this far and no further: the count never costs more than the page.
COUNT_CAP = 10_000


@dataclass(frozen=True, slots=True)
class Dashboard:
    active: list[Job]  # the newest ACTIVE_SHOWN active jobs
    active_total: int  # every active job (counted to COUNT_CAP, as a list's total)
    recent: list[Job]  # the RECENT_SHOWN that finished last, newest first


@dataclass(frozen=True, slots=True)
class ReportResult:
    applied: bool
    job: Job


@dataclass(frozen=True, slots=True)
class ReportItem:
    """A reporter's batch, ready to store: everything that grows with its points (the chunk's
    encoding, its metric keys) is done before the write transaction every writer waits for."""

    job_id: str
    report: ProgressReport
    keys: set[str]
    chunk: str | None

    @classmethod
    def of(cls, job_id: str, report: ProgressReport) -> ReportItem:
        chunk = encode_chunk(report.points) if report.points else None
        return cls(job_id, report, batch_metric_keys(report.points), chunk)


def _applied(outcome: ReportResult | TrainmonError) -> bool:
    return isinstance(outcome, ReportResult) and outcome.applied


class JobService:
    def __init__(
        self,
        store: Store,
        *,
        clock: Clock = time.time,
        heartbeat_interval: float = 10.0,
        lost_contact_timeout: float = 60.0,
        max_metric_keys: int = DEFAULT_MAX_METRIC_KEYS,
        command_executor: str = "local",
    ) -> None:
        self.store = store
        # Jobs created with a command are run by the executor of this name (settings).
        self.command_executor = command_executor
        self.max_metric_keys = max_metric_keys
        self.clock = clock
        self._subscribers: list[Subscriber] = []
        self.heartbeat_interval = heartbeat_interval
        self.lost_contact_timeout = lost_contact_timeout

    def subscribe(self, subscriber: Subscriber) -> None:
        """Hear every committed change, in commit order, on the committing thread."""
        self._subscribers.append(subscriber)

    def _publish(self, change: Change) -> None:
        for subscriber in self._subscribers:
            subscriber(change)

    def announce(self, job: Job) -> None:
        """Tell subscribers about a job whose look changed with no write (it turned stale)."""
        self._publish(job)

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
        self, query: JobQuery = ALL_JOBS, limit: int = 100, cursor: str | None = None
    ) -> Page:
        """A page of jobs; ``BadRequest`` for a cursor that is not this query's."""
        try:
            after = decode_cursor(query, cursor) if cursor else None
        except QueryError as exc:
            raise BadRequest(str(exc), field=exc.field) from None
        with self.store.read() as conn:
            total = self.store.count_jobs(conn, query, COUNT_CAP)
            found = self.store.list_jobs(conn, query, limit + 1, after, matching=total)
        more = len(found) > limit
        found = found[:limit]
        next_cursor = encode_cursor(query, found[-1]) if more and found else None
        return Page(found, min(total, COUNT_CAP), total <= COUNT_CAP, next_cursor)

    def dashboard(self) -> Dashboard:
        """What the live sections show: bounded, with the count of what they leave out."""
        with self.store.read() as conn:
            active = self.store.list_jobs(conn, ACTIVE_JOBS, ACTIVE_SHOWN, None)
            total = self.store.count_jobs(conn, ACTIVE_JOBS, COUNT_CAP)
            recent = self.store.list_jobs(conn, RECENT_JOBS, RECENT_SHOWN, None)
        return Dashboard(active, min(total, COUNT_CAP), recent)

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
            executor=self.command_executor if spec.command is not None else "sdk",
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

    def cancel(self, job_id: str, source: str = "api") -> Job:
        """Pending and queued jobs end at once; a running one is asked to stop. ``source``
        ("api" or "dashboard") is recorded and named in the end reason."""
        now = self.clock()
        with self.store.write() as conn:
            job = self._locked(conn, job_id)
            if job.status.is_terminal:
                raise Conflict(f"job {job_id!r} is already {job.status.value}")
            job = replace(job, cancel_requested=True, cancel_source=source, updated_at=now)
            if job.status is not JobStatus.RUNNING:
                reason = cancel_reason(source, "before start")
                job = transition(job, JobStatus.CANCELLED, now, end_reason=reason)
            self.store.save_job(conn, job)
        self._publish(job)
        return job

    def report(self, job_id: str, report: ProgressReport) -> ReportResult:
        """Apply one reporter batch in one transaction, once per ``(reporter, seq)``."""
        [outcome] = self.report_many([ReportItem.of(job_id, report)])
        if isinstance(outcome, TrainmonError):
            raise outcome
        return outcome

    def report_many(self, items: Sequence[ReportItem]) -> list[ReportResult | TrainmonError]:
        """Apply many reporter batches in one transaction (a group commit). A refused batch
        leaves the others; each job's row is written and announced once, however many of its
        batches there were. The outcome of each item, in order; nothing is answered before
        the commit."""
        now = self.clock()
        with self.store.write() as conn:
            try:
                with conn.begin_nested():
                    outcomes, touched, before = self._apply_group(conn, items, now)
            except IntegrityError:  # another server claimed one of these batches meanwhile
                outcomes, touched = self._apply_each(conn, items, now)
                before = None
            self.store.save_jobs(conn, list(touched.values()), before)
        for job in touched.values():
            self._publish(job)
        return outcomes

    def _apply_group(
        self, conn: Connection, items: Sequence[ReportItem], now: float
    ) -> tuple[list[ReportResult | TrainmonError], dict[str, Job], dict[str, Job]]:
        """The whole group in a handful of statements: its jobs and known batches read at
        once, every decision made in Python, new batches and chunks written at once. The
        outcomes, the jobs changed, and the same jobs as they were read."""
        found = self.store.get_jobs(conn, {i.job_id for i in items if is_job_id(i.job_id)})
        keys = [(i.job_id, i.report.reporter, i.report.seq) for i in items]
        # An id no job can have (NUL, 1 MB) never reaches the database: it is just not found.
        claimed = self.store.claimed_batches(conn, [k for k in keys if k[0] in found])
        outcomes: list[ReportResult | TrainmonError] = []
        touched: dict[str, Job] = {}
        chunks: list[tuple[str, int, int, str]] = []
        for item, key in zip(items, keys, strict=True):
            job = touched.get(item.job_id) or found.get(item.job_id)
            if job is None:
                outcomes.append(NotFound(f"no job with id {item.job_id!r}"))
                continue
            if key in claimed:  # a resend: answered, not applied again
                outcomes.append(ReportResult(False, job))
                continue
            try:
                self._check_metric_keys(job, item.keys)
                updated = apply_report(job, item.report, now)
            except TrainmonError as exc:  # the batch stays unclaimed: sent again, it may apply
                outcomes.append(exc)
                continue
            claimed.add(key)
            if item.chunk is not None:
                first = job.point_count + 1
                chunks.append((item.job_id, first, len(item.report.points), item.chunk))
            touched[item.job_id] = updated
            outcomes.append(ReportResult(True, updated))
        applied = [k for k, o in zip(keys, outcomes, strict=True) if _applied(o)]
        self.store.insert_claims(conn, applied)
        self.store.insert_chunks(conn, chunks)
        return outcomes, touched, found

    def _apply_each(
        self, conn: Connection, items: Sequence[ReportItem], now: float
    ) -> tuple[list[ReportResult | TrainmonError], dict[str, Job]]:
        """One savepoint a batch: slower, and safe whatever other writers do."""
        outcomes: list[ReportResult | TrainmonError] = []
        touched: dict[str, Job] = {}
        for item in items:
            try:
                with conn.begin_nested():
                    outcomes.append(self._apply(conn, item, touched, now))
            except TrainmonError as exc:
                outcomes.append(exc)
        return outcomes, touched

    def _apply(
        self, conn: Connection, item: ReportItem, touched: dict[str, Job], now: float
    ) -> ReportResult:
        report = item.report
        job = touched.get(item.job_id) or self._locked(conn, item.job_id)
        if not self.store.claim_batch(conn, item.job_id, report.reporter, report.seq):
            return ReportResult(False, job)
        self._check_metric_keys(job, item.keys)
        updated = apply_report(job, report, now)
        if item.chunk is not None:
            first = job.point_count + 1
            self.store.insert_chunk(conn, item.job_id, first, len(report.points), item.chunk)
        touched[item.job_id] = updated
        return ReportResult(True, updated)

    def _check_metric_keys(self, job: Job, keys: set[str]) -> None:
        """Refuse the whole batch (the transaction rolls back, the seq stays unclaimed) if
        it would give the job more distinct metric keys than the limit."""
        total = metric_keys_after(job.metrics, keys)
        if total > self.max_metric_keys:
            raise ValidationFailed(
                f"this batch would give job {job.id!r} {total} distinct metric keys; the limit "
                f"is {self.max_metric_keys} per job (max_metric_keys, "
                "--max-metric-keys / TRAINMON_MAX_METRIC_KEYS); nothing was stored",
                field="points",
            )

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

    # -- executors' hooks (runner/executor.py) ------------------------------------------

    def claim_next_queued(self, executor: str) -> Job | None:
        """Take the oldest queued job of ``executor``: queued -> running in one transaction,
        so two executors on one database never start the same job. ``mark_launched`` then
        records who runs it."""
        now = self.clock()
        with self.store.write() as conn:
            job = self.store.oldest_queued(conn, executor)
            if job is None:
                return None
            job = replace(transition(job, JobStatus.RUNNING, now), last_seen_at=now)
            self.store.save_job(conn, job)
        self._publish(job)
        return job

    def mark_launched(self, job_id: str, pid: int, pid_start: int) -> Job:
        """Record the supervisor of a claimed job. A job asked to stop since its claim ends
        cancelled here instead, and ``Conflict`` tells the executor not to hand it over."""
        now = self.clock()
        with self.store.write() as conn:
            job = self._locked(conn, job_id)
            if job.status is not JobStatus.RUNNING or job.supervisor_pid is not None:
                raise Conflict(f"job {job_id!r} is {job.status.value}, not being launched")
            if job.cancel_requested:
                reason = cancel_reason(job.cancel_source, "before start")
                job = transition(job, JobStatus.CANCELLED, now, end_reason=reason)
            else:
                job = replace(job, supervisor_pid=pid, supervisor_start=pid_start, last_seen_at=now)
            self.store.save_job(conn, job)
        self._publish(job)
        if job.status is JobStatus.CANCELLED:
            raise Conflict(f"job {job_id!r} was cancelled before it started")
        return job

    def running_jobs_of(self, executor: str) -> list[Job]:
        with self.store.read() as conn:
            return self.store.jobs_in(conn, JobStatus.RUNNING, executor=executor)

    def count_running(self, executor: str) -> int:
        with self.store.read() as conn:
            return self.store.count_in(conn, JobStatus.RUNNING, executor=executor)

    def record_training_pgid(self, job_id: str, pgid: int) -> Job:
        """Remember a running job's process group (once), so it can be killed if orphaned."""
        return self._change(
            job_id,
            lambda job: (
                job
                if job.training_pgid is not None or job.status is not JobStatus.RUNNING
                else replace(job, training_pgid=pgid)
            ),
        )

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
        now = self.clock()
        if now - alive_since <= self.lost_contact_timeout:
            return []  # nobody can have been silent that long at this server yet
        with self.store.read() as conn:
            candidates = self.store.running_seen_before(conn, now - self.lost_contact_timeout)
        failed: list[Job] = []
        # The check is repeated under the write lock in case the job just reported.
        for candidate in candidates:
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

    def announce_newly_stale(self, since: float | None) -> float:
        """Tell subscribers of running jobs that turned stale (two heartbeats missed) since
        the last call, whose returned value is passed back as ``since``. Each job is read once
        when it crosses the line, not every round while it stays silent."""
        line = self.clock() - STALE_HEARTBEATS * self.heartbeat_interval
        with self.store.read() as conn:
            crossed = self.store.running_seen_before(conn, line, since=since)
        for job in crossed:
            if job.last_seen_at is not None:  # never heard from: not "stale" (is_stale)
                self.announce(job)
        return line

    @staticmethod
    def _silence(job: Job, now: float, alive_since: float) -> float:
        return now - max(job.last_seen_at or job.started_at or job.created_at, alive_since)

    # -- deleting and retention ---------------------------------------------------------

    def delete(self, job_id: str) -> None:
        """Remove a finished job with its points, batches and log; ``Conflict`` if active."""
        with self.store.write() as conn:
            job = self._locked(conn, job_id)
            if not job.status.is_terminal:
                raise Conflict(
                    f"job {job_id!r} is {job.status.value}: cancel it, and delete it once it "
                    "has ended"
                )
            self.store.delete_jobs(conn, [job.id])
        self._forget([job.id])

    def prune_finished(self, keep_seconds: float, batch: int = PRUNE_BATCH) -> list[str]:
        """Delete jobs that ended more than ``keep_seconds`` ago, ``batch`` per transaction."""
        before = self.clock() - keep_seconds
        deleted: list[str] = []
        while True:
            with self.store.write() as conn:
                ids = self.store.finished_before(conn, before, batch)
                self.store.delete_jobs(conn, ids)
            self._forget(ids)
            deleted += ids
            if len(ids) < batch:
                return deleted

    def expire_pending(self, timeout: float, alive_since: float) -> list[Job]:
        """Fail pending jobs that never reported within ``timeout`` seconds. As for lost
        contact, time while this server was down (before ``alive_since``) does not count."""
        message = f"never started: no report within {format_duration(timeout)}"
        expired: list[Job] = []
        with self.store.read() as conn:
            candidates = self.store.pending_quiet_before(conn, self.clock() - timeout, 1_000)
        for job_id in candidates:
            with self.store.write() as conn:
                job = self.store.get_job(conn, job_id, lock=True)
                now = self.clock()
                if job is None or job.status is not JobStatus.PENDING:
                    continue  # it reported (or was cancelled) while we looked
                if self._silence(job, now, alive_since) <= timeout:
                    continue
                job = transition(job, JobStatus.FAILED, now, error=message)
                self.store.save_job(conn, job)
            self._publish(job)
            expired.append(job)
        return expired

    def _forget(self, job_ids: list[str]) -> None:
        """After the rows are gone, tell subscribers (viewers; executors drop logs)."""
        for job_id in job_ids:
            self._publish(Deleted(job_id))
