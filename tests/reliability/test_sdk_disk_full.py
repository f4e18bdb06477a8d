"""A journal that cannot be written (full disk, unwritable folder) never stops the training:
points stay in memory and reach the server, the oldest are dropped (and counted) only past a
cap, one line on stderr says so, and finishing never raises."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from live import LiveServer
from sdk_helpers import Child, FakeClock, FakeServer, client_env, history_steps, job, stop_server
from trainmon.sdk.flusher import FlushConfig, Flusher
from trainmon.sdk.journal import Journal
from trainmon.sdk.values import Point

JOB = "d15cf0110000"


class Harness:
    """A flusher whose journal lives at ``journal_path``, against an in-memory server."""

    def __init__(
        self,
        journal_path: Path,
        journal_factory: Callable[[Path], Journal] = Journal,
        **kwargs: Any,
    ) -> None:
        self.server = FakeServer()
        self.clock = FakeClock()
        self.buffer: list[Point] = []
        self.warnings: list[str] = []
        self.flusher = Flusher(
            self.buffer,
            self.server.transport(),
            job_id=JOB,
            reporter="sdk-disk",
            url="http://fake",
            journal_path=journal_path,
            create_body={"id": JOB, "name": "t", "config": {}, "tags": []},
            clock=self.clock,
            sleep=self.clock.advance,
            warn=self.warnings.append,
            journal_factory=journal_factory,
            # every batch spills
            config=FlushConfig(**{"memory_limit": 1, "max_batch_points": 100, **kwargs}),
        )

    def log(self, start: int, stop: int) -> None:
        for step in range(start, stop):
            self.buffer.append((step, 1.0 + step, float(step), None))

    def run_for(self, seconds: float) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.advance(0.025)
            self.flusher.tick()


def _blocked_dir(tmp_path: Path) -> Path:
    """A journal path whose folder cannot exist: its parent is a regular file (root-proof)."""
    (tmp_path / "not-a-dir").write_text("x")
    return tmp_path / "not-a-dir" / "journal" / f"{JOB}.jsonl"


def _dev_full(tmp_path: Path) -> Path:
    """A journal path that opens fine and fails every write with a real ENOSPC."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    folder = tmp_path / "journal"
    folder.mkdir()
    link = folder / f"{JOB}.jsonl"
    link.symlink_to("/dev/full")  # close() may unlink the link, never the device
    return link


@pytest.mark.parametrize("where", ["unwritable-dir", "enospc"])
def test_server_down_then_up_with_no_disk_loses_nothing(tmp_path: Path, where: str) -> None:
    path = _blocked_dir(tmp_path) if where == "unwritable-dir" else _dev_full(tmp_path)
    h = Harness(path)
    h.server.down = True
    for chunk in range(20):
        h.log(chunk * 100, chunk * 100 + 100)
        h.run_for(0.6)  # the thread's work, every batch refused by the journal
    h.server.down = False
    h.run_for(10.0)
    assert h.flusher.close("completed", None, 5.0) == 0  # no raise, nothing on disk
    assert h.server.steps(JOB) == list(range(2000))
    assert h.server.jobs[JOB]["status"] == "completed"
    disk = [w for w in h.warnings if "cannot write the journal" in w]
    assert len(disk) == 1, h.warnings  # said once, not per batch
    reason = "No space left on device" if where == "enospc" else "Error"
    assert reason in disk[0], disk
    assert h.flusher.dropped_points == 0 and h.flusher.lost_points == 0
    assert path.is_symlink() or not path.exists()
    if where == "enospc":
        assert os.path.exists("/dev/full")


def test_journal_failing_mid_run_keeps_fifo_order(tmp_path: Path) -> None:
    """Entries the journal took before the disk filled are sent before newer ones in memory."""
    writes = 0

    class FillsUp(Journal):
        def append(self, entry: Any) -> None:
            nonlocal writes
            writes += 1
            if writes > 5:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            super().append(entry)

    h = Harness(tmp_path / "journal" / f"{JOB}.jsonl", journal_factory=FillsUp)
    h.server.down = True
    for chunk in range(12):
        h.log(chunk * 100, chunk * 100 + 100)
        h.run_for(0.6)
    h.server.down = False
    h.run_for(10.0)
    assert h.flusher.close("completed", None, 5.0) == 0
    assert h.server.steps(JOB) == list(range(1200))  # in order, each once
    seqs = [b["seq"] for p, b in h.server.requests if p.endswith("/progress") and b["points"]]
    assert seqs == sorted(seqs)


def test_memory_cap_drops_the_oldest_points_and_counts_them(tmp_path: Path) -> None:
    h = Harness(_blocked_dir(tmp_path), fallback_limit=20_000)
    h.server.down = True
    for chunk in range(40):
        h.log(chunk * 100, chunk * 100 + 100)
        h.run_for(0.6)
    assert h.flusher._mem_bytes + h.flusher._overflow_bytes <= 20_000
    dropped = h.flusher.dropped_points
    assert dropped > 0
    h.server.down = False
    h.run_for(10.0)
    h.flusher.close("completed", None, 5.0)
    steps = h.server.steps(JOB)
    assert steps == list(range(dropped, 4000))  # the oldest went, the newest all arrived
    assert h.server.jobs[JOB]["status"] == "completed"  # creation and status never dropped
    assert any("dropping the oldest points" in w for w in h.warnings), h.warnings
    assert any(f"{dropped:,} points of job {JOB} were dropped" in w for w in h.warnings)


def test_server_gone_and_disk_full_at_the_end_counts_the_loss(tmp_path: Path) -> None:
    h = Harness(_blocked_dir(tmp_path))
    h.server.down = True
    h.log(0, 500)
    assert h.flusher.close("completed", None, 0.0) == 0  # returns, does not raise
    assert h.flusher.lost_points == 500
    assert any("500 points of job" in w and "neither delivered" in w for w in h.warnings)


# -- a real script against a real server ---------------------------------------------------

SCRIPT = """
import sys, trainmon
from trainmon.sdk import flusher
# Force every batch past memory, so each one needs the (unwritable) journal.
flusher.FlushConfig.__init__.__kwdefaults__["memory_limit"] = 1
n = int(sys.argv[1])
run = trainmon.init("disk-full", total_steps=n)
print("JOB", run.id, flush=True)
for i in range(n):
    run.log(step=i, loss=0.5)
run.finish()
print("FINISHED", flush=True)
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "server-data", executor=False)
    live.data_dir.mkdir(parents=True)
    live.start()
    yield live
    stop_server(live)


@pytest.mark.timeout(180)
def test_full_disk_script_delivers_100k_points(
    server: LiveServer, spawn: Callable[..., Child], tmp_path: Path
) -> None:
    client_data = tmp_path / "client-data"
    client_data.mkdir()
    (client_data / "journal").write_text("a file where the journal folder should be")
    env = client_env(server, TRAINMON_DATA_DIR=str(client_data), TRAINMON_EXIT_TIMEOUT="60")
    points = 100_000
    child = spawn(SCRIPT, env, str(points))
    assert child.wait(150) == 0, child.output()
    assert child.line_starting("FINISHED"), child.output()
    stderr = "".join(child.stderr)
    assert "Traceback" not in stderr, child.output()
    assert stderr.count("cannot write the journal") == 1, child.output()
    job_id = (child.line_starting("JOB") or "").split()[1]
    assert sorted(history_steps(server.url, job_id)) == list(range(points))
    assert job(server.url, job_id)["status"] == "completed"
