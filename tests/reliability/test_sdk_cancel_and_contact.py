"""Cancel from the dashboard stops a real script cleanly; a SIGKILLed script's job ends
failed "lost contact"."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from live import LiveServer
from sdk_helpers import Child, client_env, job, post_json, stop_server, wait_for

LOOP = """
import sys, time, trainmon
mode = sys.argv[1]
stop = []
kwargs = {"on_cancel": lambda: stop.append(True)} if mode == "on_cancel" else {}
with trainmon.init("cancel-me", **kwargs) as run:
    print("JOB", run.id, flush=True)
    step = 0
    while not stop:
        step += 1
        try:
            run.log(step=step, loss=1.0)
        except Exception:  # a training loop that swallows its own errors
            print("SWALLOWED", flush=True)
        if step % 50 == 0:
            time.sleep(0.01)  # a training step takes time
print("AFTER", run.cancelled, flush=True)
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(
        tmp_path / "server-data",
        executor=False,
        extra_args=("--heartbeat-interval", "0.5", "--lost-contact-timeout", "2"),
    )
    live.data_dir.mkdir(parents=True)
    live.start()
    yield live
    stop_server(live)


def start_loop(server: LiveServer, spawn: Callable[..., Child], mode: str) -> tuple[Child, str]:
    env = client_env(server, TRAINMON_FLUSH_SECONDS="0.2", TRAINMON_HEARTBEAT_SECONDS="0.3")
    child = spawn(LOOP, env, mode)
    wait_for(lambda: child.line_starting("JOB"), 60, "the job id", child.output)
    job_id = (child.line_starting("JOB") or "").split()[1]
    wait_for(
        lambda: job(server.url, job_id)["status"] == "running",
        60,
        "the job to run",
        lambda: child.output() + server.output()[-3000:],
    )
    return child, job_id


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["raise", "on_cancel"])
def test_cancel_stops_the_loop_and_reports_cancelled(
    server: LiveServer, spawn: Callable[..., Child], mode: str
) -> None:
    child, job_id = start_loop(server, spawn, mode)
    answer = post_json(f"{server.url}/api/training/jobs/{job_id}/cancel", server.token)
    assert answer.get("cancelRequested") is True, answer
    assert child.wait(60) == 0, child.output()
    assert child.line_starting("AFTER True"), child.output()
    assert not child.line_starting("SWALLOWED"), child.output()  # BaseException, not Exception
    wait_for(
        lambda: job(server.url, job_id)["status"] == "cancelled",
        30,
        "the job to be cancelled",
        lambda: child.output() + server.output()[-3000:],
    )


@pytest.mark.timeout(120)
def test_killed_script_ends_failed_lost_contact(
    server: LiveServer, spawn: Callable[..., Child]
) -> None:
    child, job_id = start_loop(server, spawn, "raise")
    child.kill()
    wait_for(
        lambda: job(server.url, job_id)["status"] == "failed",
        60,
        "the server to notice the lost contact",
        lambda: str(job(server.url, job_id)) + server.output()[-3000:],
    )
    assert "lost contact" in (job(server.url, job_id)["error"] or "")
