from __future__ import annotations

import math
import threading

import pytest
from sqlalchemy import text

from trainmon.errors import BadRequest, Conflict, NotFound
from trainmon.job_query import JobQuery
from trainmon.models import ACTIVE, Command, JobStatus, Point
from trainmon.reporting import ProgressReport
from trainmon.service import JobCreate, JobService
from trainmon.store import Store
from trainmon.store.migrations import MIGRATIONS, upgrade


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


@pytest.fixture
def service(store: Store) -> JobService:
    return JobService(store, clock=FakeClock(), heartbeat_interval=10, lost_contact_timeout=60)


def test_migrations_are_recorded_and_idempotent(store: Store) -> None:
    assert upgrade(store.engine) == MIGRATIONS[-1][0]
    with store.engine.connect() as conn:
        versions = conn.execute(text("SELECT version FROM trainmon_schema")).scalars().all()
    assert versions == [v for v, _ in MIGRATIONS]


def test_create_get_and_idempotent_create(service: JobService) -> None:
    job, created = service.create_job(
        JobCreate(name="a", total_steps=10, id="abcdef123456", config={"lr": 0.1}, tags=("x",))
    )
    assert created and job.status is JobStatus.PENDING and job.executor == "sdk"
    again, created_again = service.create_job(JobCreate(name="a", id="abcdef123456"))
    assert not created_again and again == job
    assert service.get_job(job.id) == job
    with pytest.raises(Conflict):
        service.create_job(JobCreate(name="other", id="abcdef123456"))


def test_command_jobs_are_queued_for_the_local_executor(service: JobService) -> None:
    command = Command(("python", "train.py"), "/tmp", {"A": "1"})
    job, _ = service.create_job(JobCreate(name="c", command=command, grace_seconds=3))
    stored = service.get_job(job.id)
    assert stored.status is JobStatus.QUEUED and stored.executor == "local"
    assert stored.command == command and stored.grace_seconds == 3
    assert service.claim_next_queued("ray") is None, "claimed only by its own executor"
    claimed = service.claim_next_queued("local")
    assert claimed is not None and claimed.id == job.id
    assert claimed.status is JobStatus.RUNNING and claimed.supervisor_pid is None
    assert service.claim_next_queued("local") is None, "claimed once"
    launched = service.mark_launched(job.id, pid=4242, pid_start=99)
    assert launched.status is JobStatus.RUNNING and launched.supervisor_pid == 4242
    assert service.count_running("local") == 1 and service.running_jobs_of("local") == [launched]
    assert service.count_running("ray") == 0
    with pytest.raises(Conflict):
        service.mark_launched(job.id, pid=1, pid_start=1)


def test_command_jobs_go_to_the_executor_the_settings_name(store: Store) -> None:
    service = JobService(store, clock=FakeClock(), command_executor="ray")
    command = Command(("python", "train.py"), "/tmp", {})
    job, _ = service.create_job(JobCreate(name="r", command=command))
    assert job.executor == "ray"
    assert service.create_job(JobCreate(name="sdk"))[0].executor == "sdk"


def test_a_job_cancelled_between_claim_and_launch_ends_cancelled(service: JobService) -> None:
    command = Command(("python", "train.py"), "/tmp", {})
    job, _ = service.create_job(JobCreate(name="c", command=command))
    assert service.claim_next_queued("local") is not None
    service.cancel(job.id, "dashboard")
    with pytest.raises(Conflict, match="cancelled before it started"):
        service.mark_launched(job.id, pid=4242, pid_start=99)
    ended = service.get_job(job.id)
    assert ended.status is JobStatus.CANCELLED and ended.supervisor_pid is None
    assert ended.end_reason == "cancelled from the dashboard before start"


def test_concurrent_claims_take_each_job_once(db_url: str) -> None:
    """Two servers on one database (two stores, four threads) never start the same job."""
    stores = [Store(db_url), Store(db_url)]
    stores[0].migrate()
    try:
        services = [JobService(store) for store in stores]
        command = Command(("python", "train.py"), "/tmp", {})
        made = {services[0].create_job(JobCreate(name=f"j{i}", command=command))[0].id
                for i in range(40)}  # fmt: skip
        claimed: list[str] = []
        lock = threading.Lock()

        def claim_all(service: JobService) -> None:
            while (job := service.claim_next_queued("local")) is not None:
                with lock:
                    claimed.append(job.id)

        threads = [threading.Thread(target=claim_all, args=(services[i % 2],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(claimed) == sorted(made), "every job claimed exactly once"
    finally:
        for store in stores:
            store.dispose()


def test_pagination_newest_first_over_all_pages(service: JobService) -> None:
    ids = [service.create_job(JobCreate(name=f"j{i}"))[0].id for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        page = service.list_jobs(limit=3, cursor=cursor)
        assert page.total == 7
        seen += [job.id for job in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(ids))


@pytest.mark.parametrize("cursor", ["!!!", "e30", "WzEsMiwzXQ", "WyJ4IiwgMV0"])
def test_bad_cursor_is_a_bad_request(service: JobService, cursor: str) -> None:
    with pytest.raises(BadRequest):
        service.list_jobs(cursor=cursor)


def test_cancel_semantics(service: JobService) -> None:
    pending, _ = service.create_job(JobCreate(name="p"))
    cancelled = service.cancel(pending.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.cancel_requested
    with pytest.raises(Conflict):
        service.cancel(pending.id)
    running, _ = service.create_job(JobCreate(name="r"))
    service.report(running.id, ProgressReport("sdk", 0, status=JobStatus.RUNNING))
    asked = service.cancel(running.id)
    assert asked.status is JobStatus.RUNNING and asked.cancel_requested
    assert service.cancel(running.id).cancel_requested  # repeating is harmless
    with pytest.raises(NotFound):
        service.cancel("nope")


def test_batch_applied_once_and_nan_survives(service: JobService, store: Store) -> None:
    job, _ = service.create_job(JobCreate(name="n", total_steps=2000))
    points = [Point(i, 1.0 + i, {"loss": 1.0 / (i + 1), "lr": 0.1}) for i in range(1500)]
    points.append(Point(1500, 2000.0, {"loss": math.nan, "gn": math.inf, "m": -math.inf}))
    batch = ProgressReport("sdk-x", 7, points=points, status=JobStatus.RUNNING)
    assert service.report(job.id, batch).applied
    assert not service.report(job.id, batch).applied
    assert service.report(job.id, ProgressReport("other", 7)).applied  # seq is per reporter
    stored = service.points(job.id, after=None, limit=10_000)
    assert len(stored) == 1501
    last = stored[-1].values
    assert math.isnan(last["loss"]) and last["gn"] == math.inf and last["m"] == -math.inf
    got = service.get_job(job.id)
    assert (
        got.current_step == 1500 and got.current_loss is not None and math.isnan(got.current_loss)
    )
    assert got.metrics == {"lr": 0.1, "gn": math.inf, "m": -math.inf}
    rest = service.points(job.id, after=stored[999].seq, limit=10_000)
    assert [p.step for p in rest] == list(range(1000, 1501))


def test_lost_contact_fails_silent_running_jobs(service: JobService) -> None:
    clock = service.clock
    assert isinstance(clock, FakeClock)
    job, _ = service.create_job(JobCreate(name="quiet"))
    service.report(job.id, ProgressReport("sdk", 0, status=JobStatus.RUNNING))
    assert service.reap_lost_contact(alive_since=0) == []
    clock.now += 61
    assert service.is_stale(service.get_job(job.id), clock.now)
    failed = service.reap_lost_contact(alive_since=0)
    assert [j.id for j in failed] == [job.id]
    assert failed[0].status is JobStatus.FAILED and failed[0].error is not None
    assert failed[0].error.startswith("lost contact")


def test_stale_jobs_are_announced_once_when_they_cross_the_line(store: Store) -> None:
    clock = FakeClock()
    service = JobService(store, clock=clock, heartbeat_interval=10, lost_contact_timeout=600)
    heard: list[str] = []
    service.subscribe(lambda change: heard.append(getattr(change, "id", "")))
    quiet, _ = service.create_job(JobCreate(name="quiet"))
    busy, _ = service.create_job(JobCreate(name="busy"))
    never, _ = service.create_job(JobCreate(name="never"))
    for job in (quiet, busy):
        service.report(job.id, ProgressReport("sdk", 0, status=JobStatus.RUNNING))
    heard.clear()
    line = service.announce_newly_stale(None)
    assert heard == []
    clock.now += 15
    service.report(busy.id, ProgressReport("sdk", 1, current_step=1))
    clock.now += 10  # quiet: 25 s silent (> 2 heartbeats); busy: 10 s
    heard.clear()
    line = service.announce_newly_stale(line)
    assert heard == [quiet.id]
    assert service.is_stale(service.get_job(quiet.id), clock.now)
    clock.now += 5
    heard.clear()
    line = service.announce_newly_stale(line)
    assert heard == [], "announced when it crossed, not every round"
    clock.now += 20  # now busy has crossed too
    line = service.announce_newly_stale(line)
    assert heard == [busy.id]
    assert never.id not in heard, "a pending job is never stale"


def test_server_restart_grace_for_lost_contact(service: JobService) -> None:
    clock = service.clock
    assert isinstance(clock, FakeClock)
    job, _ = service.create_job(JobCreate(name="old"))
    service.report(job.id, ProgressReport("sdk", 0, status=JobStatus.RUNNING))
    clock.now += 1_000
    assert service.reap_lost_contact(alive_since=clock.now - 5) == []


def test_the_dashboard_is_bounded_and_says_what_it_leaves_out(
    service: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("trainmon.service.ACTIVE_SHOWN", 3)
    monkeypatch.setattr("trainmon.service.RECENT_SHOWN", 2)
    done = []
    for i in range(4):
        job, _ = service.create_job(JobCreate(name=f"done-{i}"))
        service.cancel(job.id)
        done.append(job.id)
    active = [service.create_job(JobCreate(name=f"active-{i}"))[0].id for i in range(5)]
    board = service.dashboard()
    assert [j.id for j in board.active] == active[::-1][:3], "the newest active jobs"
    assert board.active_total == 5
    assert [j.id for j in board.recent] == done[::-1][:2], "the last to finish"
    assert service.list_jobs(JobQuery(statuses=ACTIVE)).total == 5


def test_changes_are_published_after_commit(store: Store) -> None:
    seen: list[tuple[str, str]] = []
    service = JobService(store, clock=FakeClock())

    def on_change(job: object) -> None:
        # Committed: a fresh read from another connection already sees it.
        from trainmon.models import Job

        assert isinstance(job, Job)
        seen.append((job.id, service.get_job(job.id).status.value))

    service.subscribe(on_change)
    job, _ = service.create_job(JobCreate(name="e"))
    service.cancel(job.id)
    assert seen == [(job.id, "pending"), (job.id, "cancelled")]
