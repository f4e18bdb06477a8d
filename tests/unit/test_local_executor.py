"""The local executor against a real service on SQLite and a stand-in supervisor: order, the
concurrency limit, the claim and handover, and reconciliation. The real supervisor has its own
tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from runner_helpers import kill_session, wait_for
from trainmon.models import Command, Job, JobStatus
from trainmon.runner import proc
from trainmon.runner.local_executor import (
    HANDOVER_SECONDS,
    LocalExecutor,
    dead_supervisor_error,
    orphan_scope,
    reap_spawned,
)
from trainmon.service import JobCreate, JobService
from trainmon.store import Store

# Records what it was handed; with a job it stays up like a real supervisor would.
STAND_IN = """
import pathlib, sys, time
args = sys.argv[1:]
job = args[args.index("--job-id") + 1]
data = pathlib.Path(args[args.index("--data-dir") + 1])
raw = sys.stdin.read()
(data / f"got-{job}").write_text(raw or "EOF")
if raw:
    time.sleep(600)
"""


COMMAND = Command(("python", "train.py"), "/tmp", {"A": "1"})


class RacingService(JobService):
    """A real service on SQLite, with a hook to cancel a job between its claim and the
    recording of its supervisor (the handover window)."""

    cancel_on_launch: set[str]

    def mark_launched(self, job_id: str, pid: int, pid_start: int) -> Job:
        if job_id in self.cancel_on_launch:
            self.cancel(job_id)
        return super().mark_launched(job_id, pid, pid_start)


def add(service: JobService, job_id: str, status: JobStatus = JobStatus.QUEUED, **kw: Any) -> Job:
    """A local job with a command; any other status and fields are written as given."""
    job, _ = service.create_job(
        JobCreate(name=job_id, id=job_id, command=COMMAND, grace_seconds=3.0)
    )
    if status is not JobStatus.QUEUED or kw:
        job = put(service, replace(job, status=status, **kw))
    return job


def put(service: JobService, job: Job) -> Job:
    with service.store.write() as conn:
        service.store.save_job(conn, job)
    return job


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RacingService]:
    store = Store(f"sqlite:///{tmp_path / 'jobs.db'}")
    store.migrate()
    svc = RacingService(store)
    svc.cancel_on_launch = set()
    yield svc
    store.dispose()


@pytest.fixture
def executor(service: JobService, tmp_path: Path) -> Iterator[LocalExecutor]:
    ex = LocalExecutor(
        service, data_dir=tmp_path, server_url="http://127.0.0.1:1/", token="tok",
        max_concurrent=2, supervisor=(sys.executable, "-c", STAND_IN),
    )  # fmt: skip
    yield ex
    ex.stop()
    for job in service.list_jobs(limit=500).jobs:
        if job.supervisor_pid:
            kill_session(job.supervisor_pid)
    wait_for(lambda: not reap_spawned() and not _unreaped(), "stand-ins to be reaped", 30)


def _unreaped() -> bool:
    from trainmon.runner import local_executor

    reap_spawned()
    return bool(local_executor._spawned)


def handed(tmp_path: Path, job_id: str) -> str:
    got = tmp_path / f"got-{job_id}"

    def read() -> str | None:
        return got.read_text() if got.exists() else None

    return wait_for(read, f"the supervisor of {job_id} to get its job")


def test_launches_in_creation_order_up_to_the_limit(
    service: RacingService, executor: LocalExecutor, tmp_path: Path
) -> None:
    for name in ("job-a-0", "job-b-0", "job-c-0"):
        add(service, name)
    launched = executor.poll()
    assert [j.id for j in launched] == ["job-a-0", "job-b-0"]
    assert service.get_job("job-c-0").status is JobStatus.QUEUED
    spec = json.loads(handed(tmp_path, "job-a-0"))
    assert spec == {
        "argv": ["python", "train.py"], "cwd": "/tmp", "env": {"A": "1"}, "grace": 3.0,
        "token": "tok",
    }  # fmt: skip
    job_a = service.get_job("job-a-0")
    assert job_a.supervisor_pid is not None
    assert proc.is_alive(job_a.supervisor_pid, job_a.supervisor_start)
    stat = proc.read_stat(job_a.supervisor_pid)
    assert stat is not None and stat.sid == job_a.supervisor_pid, "a session of its own"

    assert executor.poll() == []  # full
    put(service, replace(job_a, status=JobStatus.COMPLETED))
    assert [j.id for j in executor.poll()] == ["job-c-0"]


def test_job_cancelled_during_handover_is_never_started(
    service: RacingService, executor: LocalExecutor, tmp_path: Path
) -> None:
    add(service, "job-x-0")
    service.cancel_on_launch.add("job-x-0")
    assert executor.poll() == []
    # The stand-in either read EOF or was killed first; it never got the command.
    got = tmp_path / "got-job-x-0"
    wait_for(lambda: _unreaped() is False, "the refused supervisor to be gone")
    assert not got.exists() or got.read_text() == "EOF"
    cancelled = service.get_job("job-x-0")
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.end_reason == "cancelled via the API before start"
    assert cancelled.supervisor_pid is None


def test_reconcile_fails_jobs_whose_supervisor_is_gone(
    service: RacingService, executor: LocalExecutor
) -> None:
    me, my_start = os.getpid(), proc.start_time(os.getpid())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    add(service, "alive-0", JobStatus.RUNNING, supervisor_pid=me, supervisor_start=my_start)
    add(
        service,
        "reused",
        JobStatus.RUNNING,
        supervisor_pid=me,
        supervisor_start=(my_start or 0) + 1,
    )
    add(service, "dead-0", JobStatus.RUNNING, supervisor_pid=dead.pid, supervisor_start=1)
    long_ago = time.time() - HANDOVER_SECONDS - 1
    add(service, "unknown", JobStatus.RUNNING, started_at=long_ago)
    add(service, "handover", JobStatus.RUNNING, started_at=time.time())
    failed = {j.id for j in executor.reconcile()}
    assert failed == {"reused", "dead-0", "unknown"}
    assert service.get_job("handover").status is JobStatus.RUNNING, "being launched elsewhere"
    assert service.get_job("alive-0").status is JobStatus.RUNNING
    assert service.get_job("dead-0").error == dead_supervisor_error(service.get_job("dead-0"))
    assert "supervisor died without reporting" in (service.get_job("dead-0").error or "")


def test_supervisor_that_cannot_start_fails_the_job(service: RacingService, tmp_path: Path) -> None:
    ex = LocalExecutor(
        service, data_dir=tmp_path, server_url="http://x", token="t", max_concurrent=1,
        supervisor=(str(tmp_path / "no-such-python"),),
    )  # fmt: skip
    add(service, "job-y-0")
    assert ex.poll() == []
    job = service.get_job("job-y-0")
    assert job.status is JobStatus.FAILED
    assert (job.error or "").startswith("could not start the supervisor")


def test_thread_launches_and_stop_leaves_supervisors_running(
    service: RacingService, executor: LocalExecutor, tmp_path: Path
) -> None:
    executor.start()
    add(service, "job-t-0")
    handed(tmp_path, "job-t-0")
    executor.stop()
    job = service.get_job("job-t-0")
    assert job.status is JobStatus.RUNNING
    assert job.supervisor_pid is not None and proc.is_alive(job.supervisor_pid)


# A stand-in that runs a "training" in a group of its own, with a grandchild in that group.
STAND_IN_WITH_TRAINING = """
import pathlib, subprocess, sys, time
args = sys.argv[1:]
job = args[args.index("--job-id") + 1]
data = pathlib.Path(args[args.index("--data-dir") + 1])
sys.stdin.read()
code = "import os, time\\nif os.fork() == 0:\\n    time.sleep(600)\\ntime.sleep(600)"
child = subprocess.Popen([sys.executable, "-c", code], process_group=0)
(data / f"got-{job}").write_text(str(child.pid))
time.sleep(600)
"""


def test_lost_supervisor_group_is_recorded_then_killed_before_the_job_fails(
    service: RacingService, tmp_path: Path
) -> None:
    """Item 13: before, the job was failed and its training went on under PID 1."""
    ex = LocalExecutor(
        service, data_dir=tmp_path, server_url="http://127.0.0.1:1/", token="tok",
        max_concurrent=1, supervisor=(sys.executable, "-c", STAND_IN_WITH_TRAINING),
    )  # fmt: skip
    add(service, "job-g-0")
    ex.poll()
    supervisor = service.get_job("job-g-0").supervisor_pid
    assert supervisor is not None
    try:
        training = int(handed(tmp_path, "job-g-0"))

        def group() -> list[int]:
            return [s.pid for s in proc.live_members(pgid=training)]

        wait_for(lambda: len(group()) == 2, "the training and its grandchild")
        ex.poll()
        assert service.get_job("job-g-0").training_pgid == training
        os.kill(supervisor, signal.SIGKILL)  # the supervisor alone
        wait_for(lambda: not proc.is_alive(supervisor), "the supervisor to die")
        assert len(group()) == 2, "the training outlived its supervisor"
        [failed] = ex.reconcile()
        assert group() == [], "marked failed only once its group is gone"
        assert failed.status is JobStatus.FAILED
        assert failed.error == dead_supervisor_error(failed, 2)
        assert "killed 2 process(es) of its training (process group" in (failed.error or "")
    finally:
        kill_session(supervisor)
        ex.stop()


def test_orphan_scope_leaves_a_reused_pid_alone() -> None:
    job = Job(
        id="job-r", name="r", status=JobStatus.RUNNING, created_at=1, updated_at=1,
        supervisor_pid=100, supervisor_start=5, training_pgid=200,
    )  # fmt: skip
    other = proc.ProcStat(100, "python", "S", 1, 100, 100, start=9)
    own_zombie = proc.ProcStat(100, "python", "Z", 1, 100, 100, start=5)
    assert orphan_scope(job, None) == (100, 200)
    assert orphan_scope(job, own_zombie) == (100, 200)
    assert orphan_scope(job, other) == (None, 200), "that session is another process's"
