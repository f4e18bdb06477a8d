"""The public SDK (init, Run, track) with its real flusher thread and an in-memory server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import trainmon
from sdk_helpers import FakeServer
from trainmon.sdk import run as run_module


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TRAINMON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRAINMON_EXIT_TIMEOUT", "5")
    monkeypatch.setenv("TRAINMON_FLUSH_SECONDS", "0.05")
    monkeypatch.setenv("TRAINMON_HEARTBEAT_SECONDS", "0.2")  # cancel seen while idle
    monkeypatch.delenv("TRAINMON_JOB_ID", raising=False)
    yield
    for leftover in list(run_module._active):
        leftover.finish()


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


def poll(predicate: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_context_manager_completes(server: FakeServer) -> None:
    with trainmon.init("demo", total_steps=3, config={"lr": 0.1}, url="http://x",
                       transport=server.transport()) as run:  # fmt: skip
        for step in range(3):
            run.log(step=step, loss=1.0 / (step + 1), lr=np.float32(0.5), acc=None)
    job = server.jobs[run.id]
    assert job["status"] == "completed"
    assert job["name"] == "demo" and job["totalSteps"] == 3 and job["config"] == {"lr": 0.1}
    assert len(run.id) == 12 and int(run.id, 16) >= 0
    assert server.steps(run.id) == [0, 1, 2]
    assert server.points[run.id][0]["metrics"] == {"lr": 0.5}
    assert run.finished


def test_exception_fails_the_job_with_type_and_message(server: FakeServer) -> None:
    with (
        pytest.raises(ValueError, match="boom"),
        trainmon.init("x", url="http://x", transport=server.transport()) as run,
    ):
        run.log(step=0, loss=1.0)
        raise ValueError("boom")
    assert server.jobs[run.id]["status"] == "failed"
    assert server.jobs[run.id]["error"] == "ValueError: boom"


def test_log_rejects_non_numbers_at_the_call_site(server: FakeServer) -> None:
    with trainmon.init("x", url="http://x", transport=server.transport()) as run:
        with pytest.raises(TypeError, match="accuracy"):
            run.log(step=1, accuracy="high")
        with pytest.raises(TypeError, match="loss"):
            run.log(step=1, loss=[1.0])
        run.log(step=2, loss=float("nan"), grad=float("inf"))
    assert server.steps(run.id) == [2]
    assert server.points[run.id][0]["loss"] == "NaN"


def test_cancel_raises_a_base_exception_and_ends_cancelled(server: FakeServer) -> None:
    swallowed = 0
    with trainmon.init("x", url="http://x", transport=server.transport()) as run:
        server.cancel = True
        step = 0
        while True:
            step += 1
            try:
                run.log(step=step, loss=0.1)
            except Exception:  # user code that catches everything it should
                swallowed += 1
            if step % 100 == 0:
                time.sleep(0.001)  # a training step takes time
    assert swallowed == 0
    assert run.cancelled
    assert server.jobs[run.id]["status"] == "cancelled"
    assert issubclass(trainmon.JobCancelled, BaseException)
    assert not issubclass(trainmon.JobCancelled, Exception)


def test_on_cancel_lets_the_loop_choose(server: FakeServer) -> None:
    calls: list[bool] = []
    with trainmon.init(
        "x", url="http://x", transport=server.transport(), on_cancel=lambda: calls.append(True)
    ) as run:
        server.cancel = True
        poll(lambda: run.cancelled, "the cancel request")
        run.log(step=1)
        run.log(step=2)
    assert calls == [True]
    assert server.jobs[run.id]["status"] == "cancelled"


def test_attach_to_runner_job(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.jobs["0123456789ab"] = {"id": "0123456789ab", "status": "queued"}
    monkeypatch.setenv("TRAINMON_JOB_ID", "0123456789ab")
    with trainmon.init("x", url="http://x", transport=server.transport()) as run:
        run.log(step=1, loss=0.5)
    assert run.id == "0123456789ab"
    assert all(path != "/api/training/jobs" for path, _ in server.requests)
    assert server.jobs[run.id]["status"] == "completed"


def test_track_reports_each_iteration(server: FakeServer) -> None:
    items = list(trainmon.track(range(5), name="loop", url="http://x",
                                transport=server.transport()))  # fmt: skip
    assert items == [0, 1, 2, 3, 4]
    (job_id,) = server.jobs
    assert server.jobs[job_id]["status"] == "completed"
    assert server.jobs[job_id]["totalSteps"] == 5
    assert server.steps(job_id) == [1, 2, 3, 4, 5]


def test_track_inside_a_run_raises_on_cancel(server: FakeServer) -> None:
    with trainmon.init("x", url="http://x", transport=server.transport()) as run:
        server.cancel = True
        poll(lambda: run.cancelled, "the cancel request")
        seen = list(trainmon.track(range(100)))
        pytest.fail(f"track went on after cancel: {seen}")  # pragma: no cover
    assert server.jobs[run.id]["status"] == "cancelled"


def test_unreachable_or_malformed_url_never_raises(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRAINMON_EXIT_TIMEOUT", "0.2")
    monkeypatch.setenv("TRAINMON_TOKEN", "t")
    with trainmon.init("x", url="not a url") as run:
        run.log(step=1, loss=1.0)
    err = capsys.readouterr().err
    assert "not an http(s) URL" in err
    assert "trainmon sync" in err and "1 points" in err
    assert list((tmp_path / "data" / "journal").glob("*.jsonl"))


def test_finish_is_idempotent_and_module_finish_uses_the_current_run(server: FakeServer) -> None:
    run = trainmon.init("x", url="http://x", transport=server.transport())
    run.log(step=1)
    trainmon.finish()
    run.finish("failed")  # already finished: ignored
    assert server.jobs[run.id]["status"] == "completed"
    assert run_module.current_run() is None


def test_log_waits_out_back_pressure_then_goes_on(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = trainmon.init("x", url="http://x", transport=server.transport())
    waits: list[float | None] = []

    def flusher_drains(timeout: float | None = None) -> bool:
        waits.append(timeout)
        run._pressure(False)  # what the flusher does once the buffer is under its mark
        return True

    monkeypatch.setattr(run._drained, "wait", flusher_drains)
    run._pressure(True)  # as the flusher does when the buffer is over its mark
    run.log(step=1, loss=0.5)
    assert waits == [5.0]  # it waited, with a bound
    assert not run._stop and not run._throttled
    run.log(step=2, loss=0.5)
    assert len(waits) == 1  # the fast path again
    run.finish()
    assert server.steps(run.id) == [1, 2]
