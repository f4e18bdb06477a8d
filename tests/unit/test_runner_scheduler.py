"""The local executor against an in-memory service and a stand-in supervisor: order, the
concurrency limit, the handover, and reconciliation. The real supervisor has its own tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from runner_helpers import kill_session, wait_for
from trainmon.errors import Conflict, NotFound
from trainmon.models import Command, Job, JobStatus
from trainmon.runner import proc
from trainmon.runner.scheduler import (
    LocalExecutor,
    dead_supervisor_error,
    orphan_scope,
    reap_spawned,
)

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


class FakeService:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.conflict_on_launch: set[str] = set()
        self.clock = 0.0

    def add(self, job_id: str, status: JobStatus = JobStatus.QUEUED, **kw: object) -> Job:
        self.clock += 1
        job = Job(
            id=job_id, name=job_id, status=status, created_at=self.clock,
            updated_at=self.clock, executor="local",
            command=Command(("python", "train.py"), "/tmp", {"A": "1"}), grace_seconds=3.0,
        )  # fmt: skip
        job = replace(job, **kw)  # type: ignore[arg-type]
        self.jobs[job_id] = job
        return job

    def claim_next_queued(self) -> Job | None:
        queued = [j for j in self.jobs.values() if j.status is JobStatus.QUEUED]
        return min(queued, key=lambda j: j.created_at) if queued else None

    def mark_launched(self, job_id: str, pid: int, pid_start: int) -> Job:
        job = self.jobs[job_id]
        if job_id in self.conflict_on_launch:
            self.jobs[job_id] = replace(job, status=JobStatus.CANCELLED)
            raise Conflict("cancelled meanwhile")
        job = replace(job, status=JobStatus.RUNNING, supervisor_pid=pid, supervisor_start=pid_start)
        self.jobs[job_id] = job
        return job

    def running_local_jobs(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.status is JobStatus.RUNNING]

    def count_running_local(self) -> int:
        return len(self.running_local_jobs())

    def record_training_pgid(self, job_id: str, pgid: int) -> Job:
        job = self.jobs[job_id]
        if job.training_pgid is None and job.status is JobStatus.RUNNING:
            job = replace(job, training_pgid=pgid)
            self.jobs[job_id] = job
        return job

    def fail(self, job_id: str, error: str, exit_code: int | None = None) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(job_id)
        if job.status.is_terminal:
            raise Conflict("already over")
        job = replace(job, status=JobStatus.FAILED, error=error, exit_code=exit_code)
        self.jobs[job_id] = job
        return job


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
def executor(service: FakeService, tmp_path: Path) -> Iterator[LocalExecutor]:
    ex = LocalExecutor(
        service, data_dir=tmp_path, server_url="http://127.0.0.1:1/", token="tok",
        max_concurrent=2, supervisor=(sys.executable, "-c", STAND_IN),
    )  # fmt: skip
    yield ex
    ex.stop()
    for job in service.jobs.values():
        if job.supervisor_pid:
            kill_session(job.supervisor_pid)
    wait_for(lambda: not reap_spawned() and not _unreaped(), "stand-ins to be reaped", 30)


def _unreaped() -> bool:
    from trainmon.runner import scheduler

    reap_spawned()
    return bool(scheduler._spawned)


def handed(tmp_path: Path, job_id: str) -> str:
    got = tmp_path / f"got-{job_id}"

    def read() -> str | None:
        return got.read_text() if got.exists() else None

    return wait_for(read, f"the supervisor of {job_id} to get its job")


def test_launches_in_creation_order_up_to_the_limit(
    service: FakeService, executor: LocalExecutor, tmp_path: Path
) -> None:
    for name in ("job-a", "job-b", "job-c"):
        service.add(name)
    launched = executor.tick()
    assert [j.id for j in launched] == ["job-a", "job-b"]
    assert service.jobs["job-c"].status is JobStatus.QUEUED
    spec = json.loads(handed(tmp_path, "job-a"))
    assert spec == {
        "argv": ["python", "train.py"], "cwd": "/tmp", "env": {"A": "1"}, "grace": 3.0,
        "token": "tok",
    }  # fmt: skip
    job_a = service.jobs["job-a"]
    assert job_a.supervisor_pid is not None
    assert proc.is_alive(job_a.supervisor_pid, job_a.supervisor_start)
    stat = proc.read_stat(job_a.supervisor_pid)
    assert stat is not None and stat.sid == job_a.supervisor_pid, "a session of its own"

    assert executor.tick() == []  # full
    service.jobs["job-a"] = replace(job_a, status=JobStatus.COMPLETED)
    assert [j.id for j in executor.tick()] == ["job-c"]


def test_job_cancelled_during_handover_is_never_started(
    service: FakeService, executor: LocalExecutor, tmp_path: Path
) -> None:
    service.add("job-x")
    service.conflict_on_launch.add("job-x")
    assert executor.tick() == []
    # The stand-in either read EOF or was killed first; it never got the command.
    got = tmp_path / "got-job-x"
    wait_for(lambda: _unreaped() is False, "the refused supervisor to be gone")
    assert not got.exists() or got.read_text() == "EOF"
    assert service.jobs["job-x"].status is JobStatus.CANCELLED


def test_reconcile_fails_jobs_whose_supervisor_is_gone(
    service: FakeService, executor: LocalExecutor
) -> None:
    me, my_start = os.getpid(), proc.start_time(os.getpid())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    service.add("alive", JobStatus.RUNNING, supervisor_pid=me, supervisor_start=my_start)
    service.add(
        "reused", JobStatus.RUNNING, supervisor_pid=me, supervisor_start=(my_start or 0) + 1
    )
    service.add("dead", JobStatus.RUNNING, supervisor_pid=dead.pid, supervisor_start=1)
    service.add("unknown", JobStatus.RUNNING)
    failed = {j.id for j in executor.reconcile()}
    assert failed == {"reused", "dead", "unknown"}
    assert service.jobs["alive"].status is JobStatus.RUNNING
    assert service.jobs["dead"].error == dead_supervisor_error(service.jobs["dead"])
    assert "supervisor died without reporting" in (service.jobs["dead"].error or "")


def test_supervisor_that_cannot_start_fails_the_job(service: FakeService, tmp_path: Path) -> None:
    ex = LocalExecutor(
        service, data_dir=tmp_path, server_url="http://x", token="t", max_concurrent=1,
        supervisor=(str(tmp_path / "no-such-python"),),
    )  # fmt: skip
    service.add("job-y")
    assert ex.tick() == []
    job = service.jobs["job-y"]
    assert job.status is JobStatus.FAILED
    assert (job.error or "").startswith("could not start the supervisor")


def test_thread_launches_and_stop_leaves_supervisors_running(
    service: FakeService, executor: LocalExecutor, tmp_path: Path
) -> None:
    executor.start()
    service.add("job-t")
    handed(tmp_path, "job-t")
    executor.stop()
    job = service.jobs["job-t"]
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
    service: FakeService, tmp_path: Path
) -> None:
    """Item 13: before, the job was failed and its training went on under PID 1."""
    ex = LocalExecutor(
        service, data_dir=tmp_path, server_url="http://127.0.0.1:1/", token="tok",
        max_concurrent=1, supervisor=(sys.executable, "-c", STAND_IN_WITH_TRAINING),
    )  # fmt: skip
    service.add("job-g")
    ex.tick()
    supervisor = service.jobs["job-g"].supervisor_pid
    assert supervisor is not None
    try:
        training = int(handed(tmp_path, "job-g"))

        def group() -> list[int]:
            return [s.pid for s in proc.live_members(pgid=training)]

        wait_for(lambda: len(group()) == 2, "the training and its grandchild")
        ex.tick()
        assert service.jobs["job-g"].training_pgid == training
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
