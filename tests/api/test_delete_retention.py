"""Deleting a job (``DELETE /api/training/jobs/{id}``), retention of finished jobs
(``keep_days``) and the expiry of pending jobs that never report, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select, text

from live import TOKEN, LiveServer, make_settings
from runner_helpers import wait_for
from trainmon.cli import main
from trainmon.models import Deleted, JobStatus, Point
from trainmon.reporting import ProgressReport
from trainmon.runner.executor import executor_hooks
from trainmon.runner.local_executor import LocalExecutor
from trainmon.server.app import create_app
from trainmon.service import JobCreate, JobService, format_duration
from trainmon.settings import SettingsError, build_settings, parse_duration
from trainmon.store import Store
from trainmon.store.tables import batches, jobs, point_chunks

JOBS = "/api/training/jobs"
DAY = 86400.0


def create(client: TestClient, name: str = "job", **body: Any) -> dict[str, Any]:
    response = client.post(JOBS, json={"name": name, **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def report(client: TestClient, job_id: str, seq: int, **body: Any) -> None:
    response = client.post(f"{JOBS}/{job_id}/progress", json={"seq": seq, **body})
    assert response.status_code == 200, response.text


def job_in(client: TestClient, status: str) -> dict[str, Any]:
    """A job in ``status`` with three points, made through the API."""
    if status == "queued":
        return create(client, "queued", command={"argv": ["python", "-c", "pass"]})
    job = create(client, status)
    if status == "cancelled":
        assert client.post(f"{JOBS}/{job['id']}/cancel").status_code == 200
        return job
    if status == "pending":
        return job
    points = [{"step": i, "loss": 1.0 / (i + 1)} for i in range(3)]
    report(client, job["id"], 0, status="running", points=points)
    if status in ("completed", "failed"):
        report(client, job["id"], 1, status=status)
    return job


def rows_of(store: Store, job_id: str) -> dict[str, int]:
    with store.read() as conn:
        return {
            table.name: int(
                conn.execute(
                    select(func.count()).select_from(table).where(column == job_id)
                ).scalar_one()
            )
            for table, column in (
                (jobs, jobs.c.id),
                (point_chunks, point_chunks.c.job_id),
                (batches, batches.c.job_id),
            )
        }


def write_log(data_dir: Path, job_id: str) -> list[Path]:
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    files = [logs / f"{job_id}.{end}" for end in ("log", "log.base", "supervisor.log")]
    files[0].write_text("epoch 1\n")
    files[1].write_text('{"inode": 1, "base": 0}')
    files[2].write_text("the supervisor's own crash report\n")
    return files


def app_store(client: TestClient) -> Store:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    return store


# -- DELETE -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_delete_removes_a_finished_job_its_points_batches_and_log(
    client: TestClient, tmp_path: Path, status: str
) -> None:
    job, other = job_in(client, status), job_in(client, "completed")
    files = write_log(tmp_path / "data", job["id"])
    other_log = write_log(tmp_path / "data", other["id"])
    response = client.delete(f"{JOBS}/{job['id']}")
    assert response.status_code == 200, response.text
    assert response.json() == {"id": job["id"], "deleted": True}
    assert client.get(f"{JOBS}/{job['id']}").status_code == 404
    assert client.get(f"{JOBS}/{job['id']}/metrics").status_code == 404
    assert job["id"] not in [j["id"] for j in client.get(JOBS).json()["jobs"]]
    assert rows_of(app_store(client), job["id"]) == {"jobs": 0, "point_chunks": 0, "batches": 0}
    assert not any(f.exists() for f in files)
    # Nothing of another job went with it.
    assert rows_of(app_store(client), other["id"]) == {"jobs": 1, "point_chunks": 1, "batches": 2}
    assert all(f.exists() for f in other_log)
    assert len(client.get(f"{JOBS}/{other['id']}/metrics").json()["points"]) == 3
    # Deleting again: the job is gone.
    assert client.delete(f"{JOBS}/{job['id']}").status_code == 404


@pytest.mark.parametrize("status", ["pending", "queued", "running"])
def test_delete_of_an_active_job_is_409_and_keeps_it(client: TestClient, status: str) -> None:
    job = job_in(client, status)
    response = client.delete(f"{JOBS}/{job['id']}")
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "conflict" and status in error["message"]
    assert "cancel" in error["message"]
    assert client.get(f"{JOBS}/{job['id']}").json()["status"] == status
    if status == "running":
        assert len(client.get(f"{JOBS}/{job['id']}/metrics").json()["points"]) == 3


@pytest.mark.parametrize("job_id", ["000000000000", "x" * 300, "..%2F..%2Fetc"])
def test_delete_of_an_unknown_job_is_404(client: TestClient, job_id: str) -> None:
    response = client.delete(f"{JOBS}/{job_id}")
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"


def test_delete_needs_the_token(client: TestClient) -> None:
    job = job_in(client, "completed")
    response = client.delete(f"{JOBS}/{job['id']}", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401, response.text
    assert client.get(f"{JOBS}/{job['id']}").status_code == 200


def test_delete_tells_live_pages_to_drop_the_card(live_server: LiveServer) -> None:
    with live_server.client() as api:
        job = api.post(JOBS, json={"name": "to-delete"}).json()
        api.post(f"{JOBS}/{job['id']}/cancel")
        seen: list[str] = []
        with httpx.stream("GET", f"{live_server.url}/api/training/events", timeout=10) as stream:
            lines = stream.iter_lines()
            for line in lines:
                if line.startswith("event: snapshot"):
                    break
            assert api.delete(f"{JOBS}/{job['id']}").status_code == 200
            for line in lines:
                seen.append(line)
                if line.startswith("data:") and '"deleted"' in line:
                    break
    assert "event: deleted" in seen, seen
    assert json.loads(seen[-1].removeprefix("data: ")) == {"id": job["id"], "deleted": True}


# -- retention (service, injected clock) ---------------------------------------------------------


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def finished_job(service: JobService, name: str) -> str:
    job, _ = service.create_job(JobCreate(name=name))
    point = Point(1, service.clock(), {"loss": 0.5})
    running = ProgressReport(reporter="r", seq=0, points=[point], status=JobStatus.RUNNING)
    service.report(job.id, running)
    service.report(job.id, ProgressReport(reporter="r", seq=1, status=JobStatus.COMPLETED))
    return job.id


@contextmanager
def counting_writes(store: Store) -> Iterator[list[int]]:
    """Count the store's write transactions."""
    count = [0]
    original = store.write

    @contextmanager
    def write() -> Iterator[Connection]:
        count[0] += 1
        with original() as conn:
            yield conn

    store.write = write  # type: ignore[method-assign]
    try:
        yield count
    finally:
        store.write = original  # type: ignore[method-assign]


def test_prune_deletes_jobs_past_the_retention_in_small_transactions(
    store: Store, tmp_path: Path
) -> None:
    clock = FakeClock()
    service = JobService(store, clock=clock)
    # The executor drops a deleted job's log files, told by the service like the server does.
    service.subscribe(
        executor_hooks(LocalExecutor(service, data_dir=tmp_path, server_url="", token=""))
    )
    gone: list[str] = []
    service.subscribe(
        lambda change: gone.append(change.job_id) if isinstance(change, Deleted) else None
    )
    old = [finished_job(service, f"old-{i}") for i in range(25)]
    logs = write_log(tmp_path, old[0])
    clock.now += 8 * DAY
    recent = finished_job(service, "recent")
    active, _ = service.create_job(JobCreate(name="old but running"))
    service.report(active.id, ProgressReport(reporter="r", seq=0, status=JobStatus.RUNNING))
    clock.now += 0.5 * DAY
    with counting_writes(store) as writes:
        deleted = service.prune_finished(7 * DAY, batch=10)
    assert sorted(deleted) == sorted(old) == sorted(gone)
    assert writes[0] == 3  # 10 + 10 + 5: no transaction holds the lock for the whole purge
    for job_id in old:
        assert rows_of(store, job_id) == {"jobs": 0, "point_chunks": 0, "batches": 0}
    assert not any(f.exists() for f in logs)
    assert service.get_job(recent).status is JobStatus.COMPLETED
    assert service.get_job(active.id).status is JobStatus.RUNNING
    assert service.prune_finished(7 * DAY, batch=10) == []


def test_pending_jobs_that_never_report_expire(store: Store) -> None:
    clock = FakeClock()
    service = JobService(store, clock=clock)
    started = clock.now
    silent, _ = service.create_job(JobCreate(name="never reports"))
    reported, _ = service.create_job(JobCreate(name="reports"))
    queued, _ = service.create_job(JobCreate(name="waits for a slot", command=_command()))
    clock.now += 23 * 3600
    service.report(reported.id, ProgressReport(reporter="r", seq=0, status=JobStatus.RUNNING))
    assert service.expire_pending(DAY, started) == []
    clock.now += 2 * 3600
    expired = service.expire_pending(DAY, started)
    assert [job.id for job in expired] == [silent.id]
    job = service.get_job(silent.id)
    assert job.status is JobStatus.FAILED
    assert job.error == "never started: no report within 24 h"
    assert service.get_job(reported.id).status is JobStatus.RUNNING
    assert service.get_job(queued.id).status is JobStatus.QUEUED


def test_time_the_server_was_down_does_not_count(store: Store) -> None:
    clock = FakeClock()
    service = JobService(store, clock=clock)
    job, _ = service.create_job(JobCreate(name="created before a long outage"))
    clock.now += 3 * DAY
    restarted = clock.now
    clock.now += 3600
    assert service.expire_pending(DAY, restarted) == []
    clock.now += DAY
    assert [j.id for j in service.expire_pending(DAY, restarted)] == [job.id]


def _command() -> Any:
    from trainmon.models import Command

    return Command(argv=("python", "-c", "pass"))


# -- retention in the running app -----------------------------------------------------------------


@pytest.fixture
def retaining_client(tmp_path: Path, db_url: str) -> Iterator[TestClient]:
    """The app with a one-day retention, a short pending timeout and a fast housekeeping loop."""
    settings = make_settings(
        tmp_path, db_url, keep_days=1.0, pending_timeout=1.0, housekeeping_interval=0.1
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        test_client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield test_client


def backdate(store: Store, job_id: str, seconds: float) -> None:
    """Move a job's timestamps into the past, as if it had ended long ago."""
    with store.write() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET created_at = created_at - :s, updated_at = updated_at - :s,"
                " finished_at = finished_at - :s, started_at = started_at - :s WHERE id = :id"
            ),
            {"s": seconds, "id": job_id},
        )


def test_the_app_prunes_old_jobs_and_expires_silent_pending_ones(
    retaining_client: TestClient, tmp_path: Path
) -> None:
    client = retaining_client
    store = app_store(client)
    old = job_in(client, "completed")
    old_log = write_log(tmp_path / "data", old["id"])
    backdate(store, old["id"], 2 * DAY)
    recent = job_in(client, "failed")
    running = job_in(client, "running")
    backdate(store, running["id"], 2 * DAY)
    pending = create(client, "silent")

    def pruned() -> bool:
        return client.get(f"{JOBS}/{old['id']}").status_code == 404

    wait_for(pruned, "the old job to be pruned", timeout=10)
    assert rows_of(store, old["id"]) == {"jobs": 0, "point_chunks": 0, "batches": 0}
    assert not any(f.exists() for f in old_log)

    def expired() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"{JOBS}/{pending['id']}").json()
        return job if job["status"] == "failed" else None

    job = wait_for(expired, "the pending job to expire", timeout=10)
    assert job["error"] == "never started: no report within 1 s"
    assert client.get(f"{JOBS}/{recent['id']}").json()["status"] == "failed"
    assert client.get(f"{JOBS}/{running['id']}").json()["status"] == "running"


def test_a_failing_housekeeping_round_is_logged_with_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db_url = f"sqlite:///{tmp_path / 'broken.db'}"
    settings = make_settings(tmp_path, db_url, keep_days=1.0, housekeeping_interval=0.05)
    app = create_app(settings)
    with (
        caplog.at_level(logging.ERROR, logger="trainmon"),
        TestClient(app, base_url="http://127.0.0.1") as client,
    ):
        with app_store(client).write() as conn:
            conn.execute(text("ALTER TABLE jobs RENAME TO jobs_gone"))

        def logged() -> bool:
            return any("housekeeping failed" in r.getMessage() for r in caplog.records)

        wait_for(logged, "the housekeeping error in the log", timeout=10)
        assert client.get("/healthz").status_code == 200  # the server carries on
    record = next(r for r in caplog.records if "housekeeping failed" in r.getMessage())
    assert record.exc_info is not None and "no such table: jobs" in caplog.text


# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", DAY), ("30m", 1800), ("90s", 90), ("3600", 3600), ("1.5h", 5400), ("2d", 2 * DAY)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5m", "soon", "5x", "h", "9" * 400])
def test_parse_duration_refuses_nonsense(text: str) -> None:
    with pytest.raises(SettingsError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "shown"), [(DAY, "24 h"), (1800, "30 min"), (90, "90 s"), (1.0, "1 s")]
)
def test_format_duration(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_retention_settings_from_flags_env_and_defaults(tmp_path: Path) -> None:
    env = {"TRAINMON_DATA_DIR": str(tmp_path), "TRAINMON_TOKEN": TOKEN}
    default = build_settings(env=env)
    assert default.keep_days is None and default.pending_timeout == DAY
    from_env = build_settings(
        env={**env, "TRAINMON_KEEP_DAYS": "30", "TRAINMON_PENDING_TIMEOUT": "30m"}
    )
    assert from_env.keep_days == 30 and from_env.pending_timeout == 1800
    flags = build_settings(
        keep_days=7,
        pending_timeout="90s",
        env={**env, "TRAINMON_KEEP_DAYS": "30", "TRAINMON_PENDING_TIMEOUT": "30m"},
    )
    assert flags.keep_days == 7 and flags.pending_timeout == 90
    for bad in ({"TRAINMON_KEEP_DAYS": "forever"}, {"TRAINMON_PENDING_TIMEOUT": "later"}):
        with pytest.raises(SettingsError):
            build_settings(env={**env, **bad})


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["--pending-timeout", "later"], "not a duration"), (["--keep-days", "0"], "keep-days")],
)
def test_serve_with_a_bad_retention_flag_is_one_line(
    args: list[str], fragment: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "0", *args])
    assert result.exit_code != 0
    assert fragment in result.output and "Traceback" not in result.output


def test_serve_prunes_with_keep_days(tmp_path: Path) -> None:
    """The flag reaches the running server: an old job in its database is gone after start."""
    data = tmp_path / "srv"
    data.mkdir()
    db_url = f"sqlite:///{data / 'trainmon.db'}"
    store = Store(db_url)
    store.migrate()
    clock = FakeClock(time.time() - 10 * DAY)
    old = finished_job(JobService(store, clock=clock), "ten days old")
    store.dispose()
    server = LiveServer(data, db_url=db_url, executor=False, extra_args=("--keep-days", "7"))
    server.start()
    try:
        with server.client() as api:
            wait_for(
                lambda: api.get(f"{JOBS}/{old}").status_code == 404,
                "the old job to be pruned at startup",
                timeout=10,
                output=server.output,
            )
    finally:
        server.close()
