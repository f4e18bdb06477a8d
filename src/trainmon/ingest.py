"""Group commit for progress reports: one writer thread stores every batch that is waiting in
one transaction, then answers them all.

A team's server does not see big batches but many small ones: hundreds of jobs each sending a
few points every half second. One transaction per POST made them queue on the database's write
lock (SQLite's busy handler sleeps between tries: p99 of a second at 300 POST/s), and wrote each
job's row once per POST. Here a batch waits only while the writer stores the previous group, so
under light load a report commits at once and under heavy load the groups grow: each job's row
is written and announced once a group, the commit is shared.

The durability promise is unchanged: a report is answered 2xx only after the transaction that
stored it has committed. Past ``max_pending`` waiting batches (or ``max_points`` points) the
server answers 503 with Retry-After instead of queueing without bound; the SDK then waits and
sends again, keeping its points meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from trainmon.errors import ServerBusy, TrainmonError
from trainmon.reporting import ProgressReport
from trainmon.service import JobService, ReportItem, ReportResult

log = logging.getLogger(__name__)

Outcome = ReportResult | BaseException

MAX_PENDING = 5_000  # batches waiting for the writer
MAX_POINTS = 2_000_000  # points in them
GROUP_REPORTS = 1_000  # batches stored in one transaction at most
GROUP_POINTS = 200_000  # and points


@dataclass(frozen=True, slots=True)
class Waiting:
    job_id: str
    report: ProgressReport
    answer: asyncio.Future[ReportResult]


def _settle(answers: list[tuple[asyncio.Future[ReportResult], Outcome]]) -> None:
    """On the event loop: hand each waiting request its outcome."""
    for future, outcome in answers:
        if future.cancelled():  # the client went away
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class IngestQueue:
    """``submit`` on an event loop; the answers come back to it, a group's in one wake-up (a
    wake-up per report cost the loop a system call each)."""

    def __init__(
        self,
        service: JobService,
        *,
        max_pending: int = MAX_PENDING,
        max_points: int = MAX_POINTS,
    ) -> None:
        self.service = service
        self.max_pending = max_pending
        self.max_points = max_points
        self._waiting: deque[Waiting] = deque()
        self._points = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="trainmon-ingest", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Store what is waiting, then end the writer."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def submit(self, job_id: str, report: ProgressReport) -> asyncio.Future[ReportResult]:
        """Queue a batch; its outcome once committed. ``ServerBusy`` at once if the writer is
        this far behind already."""
        answer: asyncio.Future[ReportResult] = asyncio.get_running_loop().create_future()
        points = len(report.points)
        with self._wake:
            if self._stopping:
                raise ServerBusy("the server is shutting down; send again shortly")
            over = self._points + points > self.max_points and self._waiting
            if len(self._waiting) >= self.max_pending or over:
                raise ServerBusy(
                    f"{len(self._waiting)} reports are waiting to be stored; send again shortly"
                )
            self._waiting.append(Waiting(job_id, report, answer))
            self._points += points
            self._wake.notify()
        return answer

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _take(self) -> list[Waiting] | None:
        """The next group, or None once stopped with nothing left."""
        with self._wake:
            while not self._waiting and not self._stopping:
                self._wake.wait()
            if not self._waiting:
                return None
            group: list[Waiting] = []
            points = 0
            while self._waiting and len(group) < GROUP_REPORTS:
                size = len(self._waiting[0].report.points)
                if group and points + size > GROUP_POINTS:
                    break
                group.append(self._waiting.popleft())
                points += size
            self._points -= points
            return group

    def _run(self) -> None:
        while (group := self._take()) is not None:
            outcomes = self._store(group)
            by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = defaultdict(list)
            for waiting, outcome in zip(group, outcomes, strict=True):
                by_loop[waiting.answer.get_loop()].append((waiting.answer, outcome))
            for loop, answers in by_loop.items():
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_settle, answers)

    def _store(self, group: list[Waiting]) -> list[Outcome]:
        items: list[ReportItem | BaseException] = []
        for waiting in group:
            try:
                items.append(ReportItem.of(waiting.job_id, waiting.report))
            except (TrainmonError, ValueError) as exc:
                items.append(exc)
        ready = [item for item in items if isinstance(item, ReportItem)]
        try:
            stored = iter(self.service.report_many(ready) if ready else [])
        except Exception as exc:  # the database failed the whole group: every report hears it
            log.exception("ingest: storing %d reports failed", len(ready))
            return [exc for _ in group]
        return [next(stored) if isinstance(item, ReportItem) else item for item in items]
