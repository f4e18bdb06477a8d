"""The executor interface: the registry, what the server asks of an executor (logs, cancel,
resources, a deleted job) and how settings choose one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from live import TOKEN, make_settings
from trainmon.models import Command, Deleted, Job, JobStatus
from trainmon.runner.executor import (
    EXECUTORS,
    Executor,
    FileLog,
    NoLog,
    Resources,
    UnknownExecutor,
    check_executor_name,
    executor_factory,
    executor_hooks,
)
from trainmon.runner.gpus import count_gpus
from trainmon.runner.local_executor import LocalExecutor, create
from trainmon.runner.logfile import diagnostics_path, log_path
from trainmon.server.app import create_app
from trainmon.service import JobCreate, JobService
from trainmon.settings import SettingsError, build_settings
from trainmon.store import Store


@pytest.fixture
def service(tmp_path: Path) -> Iterator[JobService]:
    store = Store(f"sqlite:///{tmp_path / 'jobs.db'}")
    store.migrate()
    yield JobService(store)
    store.dispose()


def local(service: JobService, tmp_path: Path, **kw: object) -> LocalExecutor:
    return LocalExecutor(
        service,
        data_dir=tmp_path,
        server_url="http://127.0.0.1:1",
        token="t",
        **kw,  # type: ignore[arg-type]
    )


def test_the_registry_names_the_local_executor_and_refuses_others() -> None:
    assert "local" in EXECUTORS
    assert executor_factory("local") is create
    assert check_executor_name("local") == "local"
    with pytest.raises(UnknownExecutor, match="unknown executor 'slurm': use one of local"):
        executor_factory("slurm")


def test_settings_choose_the_executor_by_name(tmp_path: Path) -> None:
    env = {"TRAINMON_DATA_DIR": str(tmp_path)}
    assert build_settings(env=env).executor == "local"
    assert build_settings(env={**env, "TRAINMON_EXECUTOR": "local"}).executor == "local"
    with pytest.raises(SettingsError, match="unknown executor 'ray'"):
        build_settings(env={**env, "TRAINMON_EXECUTOR": "ray"})
    with pytest.raises(SettingsError, match="unknown executor 'nope'"):
        build_settings(executor="nope", env=env)


def test_settings_no_longer_ask_for_gpus(tmp_path: Path) -> None:
    """GPUs are counted by the executor when it needs them, not while settings are built."""
    settings = build_settings(env={"TRAINMON_DATA_DIR": str(tmp_path)})
    assert settings.max_concurrent is None
    assert (
        build_settings(max_concurrent=3, env={"TRAINMON_DATA_DIR": str(tmp_path)}).max_concurrent
        == 3
    )


def test_the_factory_builds_a_local_executor_from_settings(
    service: JobService, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, "sqlite://", max_concurrent=3, port=9999)
    built: Executor = create(service, settings)
    assert isinstance(built, LocalExecutor)
    assert built.name == "local" and built.slots() == 3
    assert built.server_url == "http://127.0.0.1:9999" and built.token == TOKEN
    assert built.data_dir == settings.data_dir


def test_resources_count_slots_and_running_jobs(service: JobService, tmp_path: Path) -> None:
    ex = local(service, tmp_path, max_concurrent=2, gpu_counter=lambda: 0)
    command = Command(("python", "x.py"), "/tmp", {})
    service.create_job(JobCreate(name="r", command=command))
    assert ex.resources() == Resources(name="local", slots=2, running=0, gpus=0)
    assert service.claim_next_queued("local") is not None
    assert ex.resources() == Resources(name="local", slots=2, running=1, gpus=0)


def test_one_slot_per_gpu_when_not_set(service: JobService, tmp_path: Path) -> None:
    asked: list[int] = []

    def four() -> int:
        asked.append(4)
        return 4

    ex = local(service, tmp_path, gpu_counter=four)
    assert asked == [], "not counted before it is needed"
    assert ex.slots() == 4 and ex.gpus() == 4 and asked == [4], "counted once"
    assert local(service, tmp_path, gpu_counter=lambda: 0).slots() == 1


def test_the_local_executor_reads_logs_from_the_data_directory(
    service: JobService, tmp_path: Path
) -> None:
    ex = local(service, tmp_path)
    job = Job(id="job-log-1", name="l", status=JobStatus.RUNNING, created_at=1, updated_at=1,
              executor="local")  # fmt: skip
    path = log_path(tmp_path, job.id)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"epoch 1\nepoch 2\n")
    log = ex.logs(job)
    assert isinstance(log, FileLog)
    assert log.tail(1) == (["epoch 2"], 16)
    assert log.after(8) == ("epoch 2\n", 16, 16)
    assert b"".join(log.chunks()) == b"epoch 1\nepoch 2\n"
    assert ex.logs(replace(job, id="job-log-2")).tail(5) == ([], 0), "no log yet"
    empty = NoLog()
    assert (empty.tail(5), empty.after(7), list(empty.chunks())) == (([], 0), ("", 7, 0), [])


class Recorder:
    name = "local"

    def __init__(self) -> None:
        self.cancelled: list[str] = []
        self.discarded: list[str] = []

    def cancel(self, job: Job) -> None:
        self.cancelled.append(job.id)

    def discard(self, job_id: str) -> None:
        self.discarded.append(job_id)


def test_hooks_tell_the_executor_of_cancels_and_deletes_that_concern_it() -> None:
    recorder = Recorder()
    hear = executor_hooks(recorder)  # type: ignore[arg-type]
    running = Job(id="job-run-1", name="r", status=JobStatus.RUNNING, created_at=1,
                  updated_at=1, executor="local")  # fmt: skip
    hear(running)
    hear(replace(running, cancel_requested=True, executor="sdk"))
    hear(replace(running, cancel_requested=True, status=JobStatus.CANCELLED))
    assert recorder.cancelled == []
    hear(replace(running, cancel_requested=True))
    assert recorder.cancelled == ["job-run-1"]
    hear(Deleted("job-run-1"))
    assert recorder.discarded == ["job-run-1"]


def test_deleting_a_job_removes_its_log_files_through_the_executor(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'app.db'}")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        service: JobService = client.app.state.service  # type: ignore[attr-defined]
        command = Command(("python", "x.py"), "/tmp", {})
        job, _ = service.create_job(JobCreate(name="gone", command=command))
        service.cancel(job.id)
        path = log_path(settings.data_dir, job.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        for leftover in (path, diagnostics_path(path)):
            leftover.write_text("x")
        assert client.get(f"/api/training/jobs/{job.id}/logs").json() == {
            "lines": ["x"],
            "size": 1,
        }
        assert client.delete(f"/api/training/jobs/{job.id}").status_code == 200
        assert not path.exists() and not diagnostics_path(path).exists()


def test_the_executors_route_says_what_this_server_runs(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'app.db'}", max_concurrent=2)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        answer = client.get("/api/executors")
    assert answer.status_code == 200
    assert answer.json() == {
        "executors": [
            {"name": "local", "active": False, "slots": 2, "running": 0, "gpus": count_gpus()}
        ]
    }
