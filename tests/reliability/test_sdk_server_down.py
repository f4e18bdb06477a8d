"""With no server, or the wrong token, a script still runs to its own exit code; one clear
line says what to do, and ``sync_pending`` later uploads every point exactly once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from live import LiveServer
from sdk_helpers import Child, client_env, dead_url, history_steps, job, stop_server
from trainmon.sdk.journal import leftover_journals, sync_pending

SCRIPT = """
import sys, trainmon
n, code = int(sys.argv[1]), int(sys.argv[2])
run = trainmon.init("offline", total_steps=n)
print("JOB", run.id, flush=True)
for i in range(n):
    run.log(step=i, loss=0.5, acc=float(i))
sys.exit(code)  # no finish(): the SDK finishes at interpreter exit
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "server-data", executor=False)
    live.data_dir.mkdir(parents=True)
    yield live
    stop_server(live)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("problem", ["unreachable", "wrong-token"])
def test_points_wait_in_the_journal_until_sync(
    server: LiveServer, spawn: Callable[..., Child], tmp_path: Path, problem: str
) -> None:
    points = 30_000
    if problem == "unreachable":
        env = client_env(server, TRAINMON_URL=dead_url(), TRAINMON_EXIT_TIMEOUT="1")
    else:
        server.start()
        env = client_env(server, TRAINMON_TOKEN="wrong", TRAINMON_EXIT_TIMEOUT="30")
    child = spawn(SCRIPT, env, str(points), "3")
    assert child.wait(120) == 3, child.output()  # the script's own exit code
    job_id = (child.line_starting("JOB") or "").split()[1]
    stderr = "".join(child.stderr)
    assert stderr.count("trainmon sync") >= 1 and "Traceback" not in stderr, child.output()
    reason = "cannot reach" if problem == "unreachable" else "rejected the token"
    assert stderr.count(reason) == 1, child.output()  # reported once, not per retry
    assert f"{points:,} points" in stderr, child.output()

    journal_dir = server.data_dir / "journal"
    assert leftover_journals(journal_dir), child.output()
    if problem == "unreachable":
        server.start()
    summary = sync_pending(server.url, server.token, journal_dir)
    assert summary.ok, summary
    assert summary.points_sent == points
    assert leftover_journals(journal_dir) == []
    steps = history_steps(server.url, job_id)
    assert sorted(steps) == list(range(points))
    final = job(server.url, job_id)
    assert final["status"] == "completed"  # sys.exit(3) without a traceback: see note below
    # Syncing again sends nothing twice.
    assert sync_pending(server.url, server.token, journal_dir).journals == 0
    assert len(history_steps(server.url, job_id)) == points


UNCAUGHT = """
import trainmon
run = trainmon.init("crashes")
print("JOB", run.id, flush=True)
run.log(step=1, loss=0.5)
raise ValueError("boom")
"""


@pytest.mark.timeout(120)
def test_uncaught_exception_without_finish_ends_failed(
    server: LiveServer, spawn: Callable[..., Child]
) -> None:
    server.start()
    child = spawn(UNCAUGHT, client_env(server))
    assert child.wait(60) == 1, child.output()  # the interpreter's own exit code
    assert "ValueError: boom" in "".join(child.stderr)  # the usual traceback, untouched
    job_id = (child.line_starting("JOB") or "").split()[1]
    final = job(server.url, job_id)
    assert final["status"] == "failed", final
    assert final["error"] == "ValueError: boom"
    assert history_steps(server.url, job_id) == [1]
