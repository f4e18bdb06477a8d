"""Item 14: a cancel is recorded with who asked for it, the API (bearer token: the CLI,
scripts) or the dashboard page, and the end reason says so; the runner's facts about the
process land even when an SDK ended the job first. Real stores (SQLite and PostgreSQL)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from trainmon.models import Command, JobStatus
from trainmon.reporting import ProgressReport
from trainmon.service import JobCreate, JobService
from trainmon.store import Store

JOBS = "/api/training/jobs"


def queued(service: JobService) -> str:
    job, _ = service.create_job(JobCreate(name="q", command=Command(("true",))))
    return job.id


def running(service: JobService) -> str:
    job_id = queued(service)
    claimed = service.claim_next_queued("local")
    assert claimed is not None and claimed.id == job_id
    service.mark_launched(job_id, 12345, 1)
    return job_id


def test_api_cancel_with_the_bearer_token_says_via_the_api(client: TestClient) -> None:
    made = client.post(JOBS, json={"name": "q", "command": {"argv": ["true"]}}).json()
    answer = client.post(f"{JOBS}/{made['id']}/cancel")
    assert answer.status_code == 200, answer.text
    assert answer.json()["endReason"] == "cancelled via the API before start"


def test_a_signed_in_page_cancel_says_from_the_dashboard(client: TestClient) -> None:
    made = client.post(JOBS, json={"name": "q", "command": {"argv": ["true"]}}).json()
    bearer = client.headers.pop("Authorization")  # the page has no token, only its session
    try:
        signed_in = client.post("/login", data={"token": bearer.split()[1]})
        assert signed_in.status_code == 200, signed_in.text
        csrf = client.get("/api/auth/csrf").json()["csrfToken"]
        answer = client.post(f"{JOBS}/{made['id']}/cancel", headers={"X-CSRF-Token": csrf})
    finally:
        client.headers["Authorization"] = bearer
    assert answer.status_code == 200, answer.text
    assert answer.json()["endReason"] == "cancelled from the dashboard before start"


def test_running_job_cancel_names_its_source_and_how_it_ended(store: Store) -> None:
    service = JobService(store)
    job_id = running(service)
    service.cancel(job_id, "dashboard")
    end = ProgressReport(
        reporter="supervisor", seq=1, source="output", status=JobStatus.CANCELLED,
        exit_code=143, end_reason="exit code 143 after SIGTERM",
    )  # fmt: skip
    service.report(job_id, end)
    job = service.get_job(job_id)
    assert (job.status, job.exit_code) == (JobStatus.CANCELLED, 143)
    assert job.end_reason == "cancelled from the dashboard: exit code 143 after SIGTERM"


def test_supervisor_facts_land_after_the_sdk_failed_the_job(store: Store) -> None:
    """Before: the job kept the SDK's end and no exit code at all."""
    service = JobService(store)
    job_id = running(service)
    sdk = ProgressReport(reporter="sdk", seq=1, status=JobStatus.FAILED, error="Traceback: boom")
    service.report(job_id, sdk)
    runner = ProgressReport(
        reporter="supervisor", seq=1, source="output", status=JobStatus.FAILED,
        exit_code=1, error="stderr tail", end_reason="exit code 1",
    )  # fmt: skip
    service.report(job_id, runner)
    job = service.get_job(job_id)
    assert (job.status, job.exit_code, job.end_reason) == (JobStatus.FAILED, 1, "exit code 1")
    assert job.error == "Traceback: boom", "the first error is kept"


def test_old_database_gets_the_new_columns(store: Store) -> None:
    """Migration 3 on a database made before it: the columns are added, rows kept."""
    service = JobService(store)
    job_id = queued(service)
    with store.write() as conn:
        conn.execute(text("ALTER TABLE jobs DROP COLUMN training_pgid"))
        conn.execute(text("ALTER TABLE jobs DROP COLUMN cancel_source"))
        conn.execute(text("DELETE FROM trainmon_schema WHERE version >= 3"))
    assert store.migrate() >= 3
    claimed = service.claim_next_queued("local")
    assert claimed is not None and claimed.id == job_id, "the row made before the migration"
    service.mark_launched(job_id, 12345, 1)
    service.record_training_pgid(job_id, 4242)
    service.record_training_pgid(job_id, 99)  # recorded once: the first group is the job's
    assert service.get_job(job_id).training_pgid == 4242
    service.cancel(job_id, "dashboard")
    assert service.get_job(job_id).cancel_source == "dashboard"
    assert store.migrate() >= 3, "a second run is a no-op"
