"""Item 13: a training never outlives its supervisor. ``kill -9`` of a supervisor takes its
command down (the kernel's parent-death signal), and the server, finding the supervisor gone,
kills what is left of the job's process group before it marks the job failed, so the next
queued job never shares the slot with an orphan."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from live import LiveServer
from runner_helpers import (
    PY,
    FakeServer,
    SupervisorRun,
    alive,
    get_job,
    kill_session,
    log_text,
    submit,
    supervisors,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.timeout(120)

# A training with a worker thread and a grandchild in its process group; the grandchild
# ignores SIGTERM and has no parent-death signal of its own. Writes both PIDs.
FAMILY = """
import json, os, signal, sys, threading, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
child = os.fork()
if child == 0:
    while True: time.sleep(0.05)
with open(sys.argv[1] + '.tmp', 'w') as out: json.dump([os.getpid(), child], out)
os.rename(sys.argv[1] + '.tmp', sys.argv[1])
while True: time.sleep(0.05)
"""

# Writes a file when it starts, then waits to be told to end.
MARK_AND_WAIT = """
import os, sys, time
open(sys.argv[1], 'w').close()
while not os.path.exists(sys.argv[2]): time.sleep(0.02)
"""


def read_pids(path: Path) -> list[int] | None:
    try:
        return [int(pid) for pid in json.loads(path.read_text())]
    except (OSError, ValueError):
        return None


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.stop()


def test_training_dies_with_a_killed_supervisor(fake: FakeServer, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids.json"
    run = SupervisorRun(fake.url, tmp_path / "data", [PY, "-c", FAMILY, str(pids_file)])
    try:
        main, _grandchild = wait_for(
            lambda: read_pids(pids_file), "the training's PIDs", output=run.output
        )
        assert alive([main]) == [main]
        os.kill(run.process.pid, signal.SIGKILL)  # the supervisor alone, not its session
        run.process.wait()
        wait_for(lambda: not alive([main]), "the training to die with its supervisor", 10)
    finally:
        # The grandchild has no death signal: killing it is the server's job (next test),
        # here the test's. It is still in the dead supervisor's session.
        kill_session(run.process.pid)
        run.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "server-data", extra_args=("--max-concurrent", "1"))
    live.data_dir.mkdir(parents=True, exist_ok=True)
    live.start()
    yield live
    for pid in supervisors(str(live.data_dir)):
        kill_session(pid)
    live.close()


def test_lost_supervisor_group_is_killed_before_the_job_fails_and_the_next_starts(
    server: LiveServer, tmp_path: Path
) -> None:
    pids_file = tmp_path / "pids.json"
    started, go = tmp_path / "next-started", tmp_path / "go"
    with server.client() as http:
        first = submit(http, [PY, "-c", FAMILY, str(pids_file)], name="orphaned", grace=1)
        second = submit(http, [PY, "-c", MARK_AND_WAIT, str(started), str(go)], name="next")

        def out() -> str:
            return f"--- server ---\n{server.output()}\n--- log ---\n" + log_text(
                server.data_dir, first["id"]
            )

        family = wait_for(lambda: read_pids(pids_file), "the training's PIDs", output=out)
        [supervisor] = supervisors(first["id"])
        assert get_job(http, second["id"])["status"] == "queued", "one slot"
        os.kill(supervisor, signal.SIGKILL)  # the supervisor alone: its job is left behind

        done = wait_status(http, first["id"], ["failed", "completed", "cancelled"], out)
        left = alive(family)  # at the moment the job is seen failed
        assert done["status"] == "failed", done
        assert done["error"].startswith("supervisor died without reporting"), done
        assert left == [], f"the job was marked failed while {left} still ran"
        assert http.post(f"/api/training/jobs/{first['id']}/cancel").status_code == 409

        wait_for(started.exists, "the next job to start", output=out)
        assert alive(family) == [], "the next job shares the slot with an orphan"
        go.touch()
        finished = wait_status(http, second["id"], ["completed", "failed"], out)
        assert finished["status"] == "completed", finished
