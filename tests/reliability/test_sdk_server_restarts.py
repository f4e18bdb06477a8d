"""Nothing lost: a script logs 200,000 points while its server is SIGKILLed and restarted
twice; afterwards the job's history holds every point exactly once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from live import LiveServer
from sdk_helpers import Child, client_env, history_steps, job, stop_server, wait_for

POINTS = 200_000

SCRIPT = """
import sys, time, trainmon
n = int(sys.argv[1])
with trainmon.init("restarts", total_steps=n) as run:
    print("JOB", run.id, flush=True)
    for i in range(n):
        run.log(step=i, loss=1.0 / (i + 1), lr=1e-3)
        if i % 2000 == 1999:
            time.sleep(0.03)  # a training step takes time: spread the run over a few seconds
    print("LOGGED", flush=True)
    sys.stdin.readline()  # the test says when to finish, so both kills land mid-run
print("DONE", flush=True)
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "server-data", executor=False)
    live.data_dir.mkdir(parents=True)
    live.start()
    yield live
    stop_server(live)


@pytest.mark.timeout(300)
def test_every_point_exactly_once_across_two_server_kills(
    server: LiveServer, spawn: Callable[..., Child]
) -> None:
    env = client_env(server, TRAINMON_FLUSH_SECONDS="0.2", TRAINMON_EXIT_TIMEOUT="120")
    child = spawn(SCRIPT, env, str(POINTS))

    def output() -> str:
        return f"{child.output()}\n--- server:\n{server.output()[-4000:]}"

    wait_for(lambda: child.line_starting("JOB"), 60, "the job id", output)
    job_id = (child.line_starting("JOB") or "").split()[1]

    def stored_step_at_least(step: int) -> bool:
        return (job(server.url, job_id).get("currentStep") or 0) >= step

    for threshold in (POINTS // 5, POINTS * 3 // 5):
        wait_for(lambda t=threshold: stored_step_at_least(t), 120, f"step {threshold}", output)
        server.kill()  # like a crash, possibly in the middle of storing a batch
        server.start()

    wait_for(lambda: child.line_starting("LOGGED"), 120, "the script to log everything", output)
    child.say("finish")
    assert child.wait(180) == 0, output()
    assert child.line_starting("DONE"), output()
    assert "trainmon sync" not in "".join(child.stderr), output()  # everything was delivered

    steps = history_steps(server.url, job_id)
    assert len(steps) == POINTS, f"{len(steps)} points stored\n{output()}"
    assert sorted(steps) == list(range(POINTS))
    final = job(server.url, job_id)
    assert final["status"] == "completed"
    assert final["currentStep"] == POINTS - 1
