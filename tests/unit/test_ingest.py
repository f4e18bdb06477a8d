"""Group commit (ingest.py) against a real service on SQLite and PostgreSQL: many reports in one
transaction keep their order and apply once, a refused one leaves the rest, each job's row is
written once a group, a full queue answers 503 at once, and stopping stores what waits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from trainmon.errors import NotFound, ServerBusy, ValidationFailed
from trainmon.ingest import IngestQueue
from trainmon.models import JobStatus, Point
from trainmon.reporting import ProgressReport
from trainmon.service import JobCreate, JobService
from trainmon.store import Store


@pytest.fixture
def service(store: Store) -> JobService:
    return JobService(store, max_metric_keys=3)


@pytest.fixture
def queue(service: JobService) -> Iterator[IngestQueue]:
    q = IngestQueue(service)
    q.start()
    yield q
    q.stop()


def batch(seq: int, first_step: int, n: int = 3, **kw: Any) -> ProgressReport:
    points = [Point(first_step + i, 1000.0 + first_step + i, {"loss": 0.5}) for i in range(n)]
    return ProgressReport("sdk", seq, points=points, **kw)


async def submit_all(queue: IngestQueue, items: list[tuple[str, ProgressReport]]) -> list[Any]:
    futures = [queue.submit(job_id, report) for job_id, report in items]
    return await asyncio.gather(*futures, return_exceptions=True)


def test_a_group_keeps_order_and_applies_each_batch_once(
    service: JobService, queue: IngestQueue
) -> None:
    jobs = [service.create_job(JobCreate(name=f"j{i}"))[0].id for i in range(5)]
    items = [
        (job_id, batch(seq, seq * 3, status=JobStatus.RUNNING if seq == 0 else None))
        for seq in range(20)
        for job_id in jobs
    ]
    items += items[:7]  # resent batches: answered, not applied again
    outcomes = asyncio.run(submit_all(queue, items))
    assert [o.applied for o in outcomes[:100]] == [True] * 100
    assert [o.applied for o in outcomes[100:]] == [False] * 7
    for job_id in jobs:
        job = service.get_job(job_id)
        assert job.status is JobStatus.RUNNING and job.point_count == 60
        assert job.current_step == 59
        steps = [p.step for p in service.points(job_id, None, 1000)]
        assert steps == list(range(60)), "every point once, in order"


def test_a_refused_batch_leaves_the_others_of_its_group(
    service: JobService, queue: IngestQueue
) -> None:
    job_id = service.create_job(JobCreate(name="ok"))[0].id
    greedy = service.create_job(JobCreate(name="greedy"))[0].id
    too_many = ProgressReport(
        "sdk", 1, points=[Point(1, 1.0, {f"k{i}": 1.0 for i in range(5)})]
    )  # five keys where three are allowed
    items = [(job_id, batch(1, 0)), (greedy, too_many), ("no-such-job", batch(1, 0))]
    items.append((job_id, batch(2, 3)))
    outcomes = asyncio.run(submit_all(queue, items))
    assert outcomes[0].applied and outcomes[3].applied
    assert isinstance(outcomes[1], ValidationFailed)
    assert isinstance(outcomes[2], NotFound)
    assert service.get_job(job_id).point_count == 6
    assert service.get_job(greedy).point_count == 0
    # The refused batch's seq was not claimed: sent again within the limit, it applies.
    again = asyncio.run(submit_all(queue, [(greedy, batch(1, 0))]))
    assert again[0].applied


def test_a_job_row_is_written_once_per_group(
    service: JobService, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = service.create_job(JobCreate(name="busy"))[0].id
    writes: list[int] = []
    original = store.save_jobs

    def counting(conn: Any, changed: Any, before: Any = None) -> None:
        writes.append(len(changed))
        original(conn, changed, before)

    monkeypatch.setattr(store, "save_jobs", counting)
    outcomes = service.report_many([])
    assert outcomes == [] and writes == [0]
    from trainmon.service import ReportItem

    items = [ReportItem.of(job_id, batch(seq, seq * 3)) for seq in range(10)]
    assert all(o.applied for o in service.report_many(items))  # type: ignore[union-attr]
    assert writes[-1] == 1, "ten batches, one row write"


def test_a_full_queue_answers_busy_at_once_and_stop_stores_what_waits(
    service: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = service.create_job(JobCreate(name="slow"))[0].id
    release = threading.Event()
    original = service.report_many

    def stuck(items: Any) -> Any:
        release.wait(30)
        return original(items)

    monkeypatch.setattr(service, "report_many", stuck)
    queue = IngestQueue(service, max_pending=3)
    queue.start()

    async def scenario() -> list[Any]:
        first = queue.submit(job_id, batch(0, 0))
        await asyncio.sleep(0)  # the writer takes it and blocks
        while queue.waiting:
            await asyncio.sleep(0.01)
        waiting = [queue.submit(job_id, batch(seq, seq * 3)) for seq in (1, 2, 3)]
        with pytest.raises(ServerBusy) as busy:
            queue.submit(job_id, batch(4, 12))
        assert busy.value.status == 503 and busy.value.retry_after == 1
        release.set()
        return await asyncio.gather(first, *waiting)

    outcomes = asyncio.run(scenario())
    assert all(o.applied for o in outcomes)
    assert service.get_job(job_id).point_count == 12
    queue.stop()


def test_stopping_stores_what_waits_and_refuses_what_comes_after(service: JobService) -> None:
    job_id = service.create_job(JobCreate(name="last-words"))[0].id
    queue = IngestQueue(service)
    queue.start()

    async def scenario() -> list[Any]:
        waiting = [queue.submit(job_id, batch(seq, seq * 3)) for seq in range(5)]
        await asyncio.get_running_loop().run_in_executor(None, queue.stop)
        with pytest.raises(ServerBusy):
            queue.submit(job_id, batch(9, 27))
        return await asyncio.gather(*waiting)

    assert all(o.applied for o in asyncio.run(scenario()))
    assert service.get_job(job_id).point_count == 15


def test_a_batch_claimed_by_another_writer_meanwhile_is_applied_once(
    service: JobService, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group reads which batches are known, then inserts the new ones; if another server
    stored one in between, the insert fails and the group is redone a batch at a time."""
    from trainmon.service import ReportItem

    job_id = service.create_job(JobCreate(name="raced"))[0].id
    assert service.report(job_id, batch(1, 0)).applied
    monkeypatch.setattr(store, "claimed_batches", lambda conn, keys: set())  # blind to it
    again, fresh = service.report_many(
        [ReportItem.of(job_id, batch(1, 0)), ReportItem.of(job_id, batch(2, 3))]
    )
    assert isinstance(again, type(fresh)) and not again.applied and fresh.applied  # type: ignore[union-attr]
    assert [p.step for p in service.points(job_id, None, 100)] == list(range(6))
