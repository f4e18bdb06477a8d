"""/proc helpers on real processes: start times, zombies, and killing a group with grace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from runner_helpers import wait_for
from trainmon.runner import proc
from trainmon.runner.proc import ProcStat, orphans, training_group

STAT = "1234 (we (ird) name) S 1 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 1 1"


def test_parse_stat_with_parentheses_in_the_name() -> None:
    stat = proc.parse_stat(STAT)
    assert (stat.pid, stat.comm, stat.state, stat.ppid, stat.pgid, stat.sid, stat.start) == (
        1234, "we (ird) name", "S", 1, 1234, 1234, 98765,
    )  # fmt: skip


@pytest.mark.parametrize("text", ["", "garbage", "12 (x) S 1"])
def test_parse_stat_rejects_garbage(text: str) -> None:
    with pytest.raises((ValueError, IndexError)):
        proc.parse_stat(text)


def test_descendants_is_the_tree_below() -> None:
    stats = [
        proc.ProcStat(2, "a", "S", 1, 2, 2, 0),
        proc.ProcStat(3, "b", "S", 2, 2, 2, 0),
        proc.ProcStat(4, "c", "Z", 3, 2, 2, 0),
        proc.ProcStat(5, "d", "S", 4, 5, 5, 0),
        proc.ProcStat(6, "e", "S", 1, 6, 6, 0),
    ]
    assert [s.pid for s in proc.descendants(2, stats)] == [3, 5]


def test_start_time_distinguishes_a_reused_pid() -> None:
    me = os.getpid()
    start = proc.start_time(me)
    assert start is not None
    assert proc.is_alive(me, start)
    assert not proc.is_alive(me, start + 1)  # same PID, another process
    assert not proc.is_alive(2**22 + 12345)


def test_zombie_counts_as_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        wait_for(
            lambda: (s := proc.read_stat(child.pid)) is not None and s.is_zombie,
            "the child to exit (unreaped)",
        )
        assert not proc.is_alive(child.pid)
    finally:
        child.wait()


STUBBORN = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    while True: time.sleep(1)
print("ready", flush=True)
while True: time.sleep(1)
"""

POLITE = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print("ready", flush=True)
while True: time.sleep(1)
"""


def start_group(code: str) -> subprocess.Popen[bytes]:
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, process_group=0)
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"
    return child


def test_terminate_group_kills_a_stubborn_group_after_grace() -> None:
    child = start_group(STUBBORN)
    try:
        members = [s.pid for s in proc.live_members(pgid=child.pid)]
        assert len(members) == 2
        result = proc.terminate_group(child.pid, grace=0.3)
        assert result == proc.KillResult(terminated=True, killed=True)
        wait_for(lambda: not proc.live_members(pgid=child.pid), "the group to be gone")
    finally:
        proc.signal_group(child.pid, signal.SIGKILL)
        child.wait()
        assert child.stdout is not None
        child.stdout.close()


def test_terminate_group_stops_at_sigterm_when_it_is_enough() -> None:
    child = start_group(POLITE)
    try:
        result = proc.terminate_group(child.pid, grace=60, is_gone=lambda: child.poll() is not None)
        assert result == proc.KillResult(terminated=True, killed=False)
        assert child.returncode == 0
    finally:
        proc.signal_group(child.pid, signal.SIGKILL)
        child.wait()
        assert child.stdout is not None
        child.stdout.close()


def test_terminate_group_of_nothing_is_a_no_op() -> None:
    assert proc.terminate_group(2**22 + 4321, grace=5) == proc.KillResult(False, False)


def _stat(
    pid: int, *, ppid: int = 1, pgid: int, sid: int, start: int, state: str = "S"
) -> ProcStat:
    return ProcStat(pid, "python", state, ppid, pgid, sid, start)


def test_orphans_are_the_session_or_group_started_after_the_supervisor() -> None:
    stats = [
        _stat(10, pgid=10, sid=10, start=1),  # started before the supervisor: not its job's
        _stat(20, pgid=20, sid=10, start=6),  # in the supervisor's session
        _stat(30, pgid=30, sid=30, start=7),  # the training's group, moved session: impossible
        _stat(31, pgid=30, sid=30, start=8, state="Z"),  # a zombie is gone
        _stat(40, pgid=40, sid=40, start=9),  # unrelated
    ]
    found = [s.pid for s in orphans(stats, sid=10, pgid=30, since=5)]
    assert found == [20, 30]
    assert [s.pid for s in orphans(stats, sid=None, pgid=None, since=None)] == []


def test_training_group_is_the_oldest_group_leading_child_in_the_session() -> None:
    stats = [
        _stat(50, ppid=9, pgid=50, sid=9, start=3),
        _stat(51, ppid=9, pgid=50, sid=9, start=4),  # a member, not a leader
        _stat(60, ppid=9, pgid=60, sid=9, start=5),  # a re-parented orphan that set its group
        _stat(70, ppid=8, pgid=70, sid=8, start=1),  # someone else's
    ]
    assert training_group(stats, 9) == 50
    assert training_group(stats, 7) is None
