"""How a real script ends decides its job's end, read back through the API of a real server:
status, exitCode, error and endReason, for each way out of a Python process."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from live import LiveServer
from sdk_helpers import Child, client_env, job, stop_server, wait_for
from trainmon.sdk.run import UNSEEN_EXIT


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("exit") / "server-data", executor=False)
    live.data_dir.mkdir(parents=True)
    live.start()
    yield live
    stop_server(live)


BARE = """
import sys, trainmon
run = trainmon.init("exits")
print("JOB", run.id, flush=True)
run.log(step=1, loss=0.5)
"""

WITH = """
import sys, trainmon
with trainmon.init("exits") as run:
    print("JOB", run.id, flush=True)
    run.log(step=1, loss=0.5)
"""


def end_of(
    server: LiveServer, spawn: Callable[..., Child], script: str, code: int
) -> dict[str, Any]:
    child = spawn(script, client_env(server))
    assert child.wait(60) == code, child.output()
    job_id = (child.line_starting("JOB") or "").split()[1]
    found = job(server.url, job_id)
    return {k: found[k] for k in ("status", "exitCode", "error", "endReason")}


CASES = [
    # (script, exit code of the process, status, exitCode, error)
    (BARE, 0, "completed", 0, None),
    (BARE + "raise ValueError('boom')", 1, "failed", 1, "ValueError: boom"),
    (BARE + "raise KeyboardInterrupt", -signal.SIGINT, "failed", None, "KeyboardInterrupt"),
    (WITH, 0, "completed", None, None),  # the block ended; the process went on
    (WITH + "    sys.exit(3)", 3, "failed", 3, "exited with code 3"),
    (WITH + "    sys.exit('bad config')", 1, "failed", 1, "bad config"),
    (WITH + "    sys.exit(0)", 0, "completed", 0, None),
    (WITH + "    sys.exit(None)", 0, "completed", 0, None),
    (WITH + "    raise ValueError('boom')", 1, "failed", None, "ValueError: boom"),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("script", "code", "status", "exit_code", "error"),
    CASES,
    ids=[
        "bare-end",
        "bare-raise",
        "bare-ctrl-c",
        "with-end",
        "with-exit-3",
        "with-exit-text",
        "with-exit-0",
        "with-exit-none",
        "with-raise",
    ],
)
def test_the_way_out_decides_the_job_end(
    server: LiveServer,
    spawn: Callable[..., Child],
    script: str,
    code: int,
    status: str,
    exit_code: int | None,
    error: str | None,
) -> None:
    end = end_of(server, spawn, script, code)
    assert (end["status"], end["exitCode"], end["error"]) == (status, exit_code, error), end


@pytest.mark.timeout(120)
@pytest.mark.parametrize("exit_call", ["sys.exit(3)", "sys.exit(0)", "sys.exit()"])
def test_bare_sys_exit_is_not_claimed_as_a_clean_exit(
    server: LiveServer, spawn: Callable[..., Child], exit_call: str
) -> None:
    """CPython 3.11 hides the code of a ``sys.exit`` that unwinds past the SDK (see run.py):
    the job says so instead of claiming ``exitCode`` 0."""
    code = 3 if "3" in exit_call else 0
    end = end_of(server, spawn, BARE + exit_call, code)
    assert end == {"status": "completed", "exitCode": None, "error": None, "endReason": UNSEEN_EXIT}


LOOP = """
import signal, sys, time, trainmon
mode = sys.argv[1]
if mode == "own-handler":
    def stop(signum, frame):
        print("HANDLED", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
elif mode == "ignored":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
before = signal.getsignal(signal.SIGTERM)
run = trainmon.init("sigterm")
assert mode == "default" or signal.getsignal(signal.SIGTERM) is before, "handler replaced"
print("JOB", run.id, flush=True)
step = 0
while True:
    step += 1
    run.log(step=step, loss=0.5)
    if step == 10:
        print("READY", flush=True)
    if mode == "ignored" and step == 10:
        sys.stdin.readline()  # the test sends SIGTERM, then a line
        break
    time.sleep(0.01)
"""


@pytest.mark.timeout(120)
def test_unhandled_sigterm_ends_failed_and_the_process_dies_by_it(
    server: LiveServer, spawn: Callable[..., Child]
) -> None:
    child = spawn(LOOP, client_env(server), "default")
    wait_for(lambda: child.line_starting("READY"), 30, "the script to start", child.output)
    child.proc.send_signal(signal.SIGTERM)
    assert child.wait(30) == -signal.SIGTERM, child.output()  # the default behaviour, chained
    job_id = (child.line_starting("JOB") or "").split()[1]
    found = job(server.url, job_id)
    assert found["status"] == "failed", found
    assert found["error"] == "killed by SIGTERM" and found["endReason"] == "SIGTERM", found
    assert found["exitCode"] is None  # a death by a signal has no exit code
    assert found["currentStep"] >= 10


@pytest.mark.timeout(120)
def test_the_scripts_own_sigterm_handler_is_left_alone(
    server: LiveServer, spawn: Callable[..., Child]
) -> None:
    child = spawn(LOOP, client_env(server), "own-handler")
    wait_for(lambda: child.line_starting("READY"), 30, "the script to start", child.output)
    child.proc.send_signal(signal.SIGTERM)
    assert child.wait(30) == 0, child.output()
    assert child.line_starting("HANDLED"), child.output()


@pytest.mark.timeout(120)
def test_an_ignored_sigterm_stays_ignored(server: LiveServer, spawn: Callable[..., Child]) -> None:
    child = spawn(LOOP, client_env(server), "ignored")
    wait_for(lambda: child.line_starting("READY"), 30, "the script to start", child.output)
    child.proc.send_signal(signal.SIGTERM)
    child.say("go on")
    assert child.wait(30) == 0, child.output()
    job_id = (child.line_starting("JOB") or "").split()[1]
    assert job(server.url, job_id)["status"] == "completed"


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("exit_call", "status", "code"), [("sys.exit(3)", "failed", 3), ("sys.exit(0)", "completed", 0)]
)
def test_under_the_runner_a_bare_sys_exit_ends_with_the_real_code(
    live_server: LiveServer, exit_call: str, status: str, code: int
) -> None:
    """The SDK cannot see that code, so it leaves the end to the supervisor, which can."""
    with live_server.client() as client:
        body = {
            "name": "runner-exit",
            "command": {"argv": [sys.executable, "-c", BARE + exit_call]},
        }
        job_id = client.post("/api/training/jobs", json=body).json()["id"]

        def ended() -> bool:
            found: str = client.get(f"/api/training/jobs/{job_id}").json()["status"]
            return found in ("completed", "failed", "cancelled")

        wait_for(ended, 60, "the runner job did not end", live_server.output)
        found = client.get(f"/api/training/jobs/{job_id}").json()
    assert (found["status"], found["exitCode"]) == (status, code), found
    assert found["endReason"] != UNSEEN_EXIT
