"""Item 15: a cancelled job ends cancelled, with how it ended, every time. Fifty cancels of
small trainings that end the hard ways (many threads, DataLoader-like worker processes, a
SIGTERM-ignoring loop, a torchrun-like launcher with two ranks, a checkpointing trap), a few
supervisors at a time, against a fake progress endpoint; none may be recorded "not started".

A multi-threaded process shows as a zombie while its threads are still being torn down and
cannot be reaped yet: a supervisor that took the zombie for "gone" lost the exit status."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner_helpers import PY, FakeServer, SupervisorRun, wait_for

pytestmark = pytest.mark.timeout(300)

GRACE = 0.4
ROUNDS = 54  # nine of each kind
AT_ONCE = 6

# Busy threads and a few hundred MB, like a torch process (intra-op pool, pin-memory thread,
# tensors): its threads take a while to be torn down after SIGTERM. Default SIGTERM.
THREADS = """
import threading, time
ballast = b"x" * (100 << 20)
def spin():
    while True: sum(range(1000))
for _ in range(12): threading.Thread(target=spin, daemon=True).start()
print('ready', flush=True)
time.sleep(600)
"""

# DataLoader workers: forked processes in the job's group, plus a thread in the main one.
WORKERS = """
import multiprocessing as mp, threading, time
def work():
    while True: time.sleep(0.01)
if __name__ == '__main__':
    ctx = mp.get_context('fork')
    workers = [ctx.Process(target=work, daemon=True) for _ in range(2)]
    for w in workers: w.start()
    threading.Thread(target=work, daemon=True).start()
    print('ready', flush=True)
    time.sleep(600)
"""

# The main thread is gone and the others go on (a launcher that left the work to threads):
# /proc shows the process as a zombie for as long as it runs, and it cannot be reaped yet.
LEADER_EXITS = """
import ctypes, threading, time
def work():
    while True: time.sleep(0.01)
for _ in range(4): threading.Thread(target=work).start()
print('ready', flush=True)
ctypes.CDLL(None).pthread_exit(None)
"""

IGNORES = """
import signal, threading, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
print('ready', flush=True)
while True: time.sleep(0.05)
"""

# torchrun: forwards SIGTERM to its two ranks, waits for them, exits 128 + 15.
LAUNCHER = """
import signal, subprocess, sys, threading, time
rank = "import threading, time\\nthreading.Thread(target=time.sleep, args=(600,)).start()\\n"
ranks = [subprocess.Popen([sys.executable, '-c', rank]) for _ in range(2)]
def forward(signum, frame):
    for r in ranks: r.send_signal(signum)
    for r in ranks: r.wait()
    sys.exit(128 + signum)
signal.signal(signal.SIGTERM, forward)
threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
print('ready', flush=True)
while True: time.sleep(0.05)
"""

TRAPS = """
import signal, sys, threading, time
def save(signum, frame):
    print('checkpoint saved', flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, save)
threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
print('ready', flush=True)
while True: time.sleep(0.05)
"""


@dataclass(frozen=True)
class Kind:
    name: str
    code: str
    exit_code: int | None
    reason: str  # what the end reason must hold


KINDS = [
    Kind("threads", THREADS, None, "SIGTERM"),
    Kind("workers", WORKERS, None, "SIGTERM"),
    Kind("leader-exits", LEADER_EXITS, None, "SIGTERM"),
    Kind("ignores", IGNORES, None, f"SIGKILL: grace period of {GRACE:g} s ran out"),
    Kind("launcher", LAUNCHER, 128 + signal.SIGTERM, f"exit code {128 + signal.SIGTERM}"),
    Kind("traps", TRAPS, 0, "exit code 0 after SIGTERM"),
]


def is_ready(run: SupervisorRun) -> bool:
    # A line of its own: the log's first line quotes the command, which holds the word too.
    return "ready" in run.log().splitlines()


@pytest.fixture
def servers() -> Iterator[list[FakeServer]]:
    made: list[FakeServer] = []
    yield made
    for server in made:
        server.stop()


def test_fifty_cancels_are_all_recorded_cancelled(
    tmp_path: Path, servers: list[FakeServer]
) -> None:
    wrong: list[str] = []
    for first in range(0, ROUNDS, AT_ONCE):
        batch: list[tuple[Kind, FakeServer, SupervisorRun]] = []
        try:
            for n in range(first, first + AT_ONCE):
                kind = KINDS[n % len(KINDS)]
                fake = FakeServer()
                servers.append(fake)
                run = SupervisorRun(
                    fake.url, tmp_path / "data", [PY, "-c", kind.code],
                    job_id=f"cancel{n:06d}", grace=GRACE,
                )  # fmt: skip
                batch.append((kind, fake, run))
            for _kind, fake, run in batch:
                wait_for(lambda r=run: is_ready(r), "the job to start", output=run.output)
                fake.cancel = True
            for kind, fake, run in batch:
                assert run.wait() == 0, run.output()
                end = fake.final()
                assert end is not None, run.output()
                got = (end["status"], end["exitCode"], end["endReason"])
                if (
                    got[0] != "cancelled"
                    or got[1] != kind.exit_code
                    or kind.reason not in str(got[2])
                    or str(got[2]).startswith("not started")
                ):
                    wrong.append(f"{run.job_id} ({kind.name}): {got}")
        finally:
            for _kind, _fake, run in batch:
                run.close()
            for server in servers:
                server.stop()
            servers.clear()
    assert wrong == [], f"{len(wrong)} of {ROUNDS} cancels misrecorded:\n" + "\n".join(wrong)
