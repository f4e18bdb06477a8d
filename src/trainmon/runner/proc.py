"""Processes as Linux shows them in ``/proc``: start times (so a reused PID is never taken for
the process we started), liveness where a zombie counts as gone, and killing a process group
with a grace period. Reads of ``/proc`` race with exits; every reader treats a vanished
process as gone."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

PROC = "/proc"
Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class ProcStat:
    pid: int
    comm: str
    state: str
    ppid: int
    pgid: int
    sid: int
    start: int  # clock ticks after boot

    @property
    def is_zombie(self) -> bool:
        return self.state in ("Z", "X")


def parse_stat(text: str) -> ProcStat:
    """Parse ``/proc/<pid>/stat``. The command name may hold spaces and parentheses, so the
    fields are counted from its last ``)``; ``ValueError`` for anything else."""
    open_at, close_at = text.index("("), text.rindex(")")
    pid = int(text[:open_at])
    rest = text[close_at + 2 :].split()
    # rest[0] is field 3 (state); field 22 (starttime) is rest[19].
    return ProcStat(
        pid=pid,
        comm=text[open_at + 1 : close_at],
        state=rest[0],
        ppid=int(rest[1]),
        pgid=int(rest[2]),
        sid=int(rest[3]),
        start=int(rest[19]),
    )


def read_stat(pid: int, proc: str = PROC) -> ProcStat | None:
    try:
        with open(f"{proc}/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            return parse_stat(handle.read())
    except (OSError, ValueError, IndexError):
        return None


def start_time(pid: int, proc: str = PROC) -> int | None:
    """The process's start time in clock ticks after boot, or ``None`` if it is gone."""
    stat = read_stat(pid, proc)
    return None if stat is None else stat.start


def is_alive(pid: int, expected_start: int | None = None, proc: str = PROC) -> bool:
    """Running (not a zombie) and, if given, started at ``expected_start``: a PID reused by
    another process after ours died is not ours."""
    stat = read_stat(pid, proc)
    if stat is None or stat.is_zombie:
        return False
    return expected_start is None or stat.start == expected_start


def all_stats(proc: str = PROC) -> list[ProcStat]:
    found: list[ProcStat] = []
    try:
        names = os.listdir(proc)
    except OSError:
        return found
    for name in names:
        if name.isdigit():
            stat = read_stat(int(name), proc)
            if stat is not None:
                found.append(stat)
    return found


def live_members(
    *, pgid: int | None = None, sid: int | None = None, proc: str = PROC
) -> list[ProcStat]:
    """Processes (zombies excluded) of a process group and/or session."""
    return [
        s
        for s in all_stats(proc)
        if not s.is_zombie and (pgid is None or s.pgid == pgid) and (sid is None or s.sid == sid)
    ]


def descendants(root: int, stats: Iterable[ProcStat]) -> list[ProcStat]:
    """Every live process below ``root`` in the parent tree, ``root`` excluded. Pure."""
    children: dict[int, list[ProcStat]] = {}
    for stat in stats:
        children.setdefault(stat.ppid, []).append(stat)
    found: list[ProcStat] = []
    todo = [root]
    seen = {root}
    while todo:
        for child in children.get(todo.pop(), []):
            if child.pid not in seen:
                seen.add(child.pid)
                found.append(child)
                todo.append(child.pid)
    return [s for s in found if not s.is_zombie]


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to a process group; ``False`` if the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def signal_pids(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


@dataclass(frozen=True, slots=True)
class KillResult:
    terminated: bool  # SIGTERM was sent to someone
    killed: bool  # the grace period ran out and SIGKILL was needed


def terminate_group(
    pgid: int,
    grace: float,
    *,
    is_gone: Callable[[], bool] | None = None,
    extra: Callable[[], list[int]] | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    poll: float = 0.05,
) -> KillResult:
    """SIGTERM the group (and the PIDs ``extra`` names), wait up to ``grace`` seconds for all of
    it to be gone, then SIGKILL whatever is left. ``is_gone`` says when the wait is over; by
    default, when no live process of the group remains (the caller must reap its own
    children, or they stay zombies, which count as gone)."""
    gone = is_gone or (lambda: not live_members(pgid=pgid) and not (extra and extra()))
    if gone():
        return KillResult(False, False)
    signal_group(pgid, signal.SIGTERM)
    if extra is not None:
        signal_pids(extra(), signal.SIGTERM)
    deadline = clock() + grace
    while clock() < deadline:
        if gone():
            return KillResult(True, False)
        sleep(poll)
    if gone():
        return KillResult(True, False)
    signal_group(pgid, signal.SIGKILL)
    if extra is not None:
        signal_pids(extra(), signal.SIGKILL)
    return KillResult(True, True)


PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
ORPHAN_KILL_WAIT = 5.0


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process instead of PID 1, so a supervisor
    can still find (and reap) a job's grandchildren after their parent died."""
    libc = _libc()
    try:
        return libc is not None and int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except AttributeError:
        return False


def die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when ``parent`` dies, so a
    training never outlives its supervisor (``kill -9`` of the supervisor included).

    The kernel fires on the exit of the *thread* that forked, so fork from the main thread.
    libc is loaded here, before the fork: the child only makes the call. If the parent died
    between fork and ``prctl``, the child was re-parented already and exits at once."""
    libc = _libc()

    def hook() -> None:
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(128 + signal.SIGKILL)

    return hook


def orphans(
    stats: Iterable[ProcStat], *, sid: int | None, pgid: int | None, since: int | None
) -> list[ProcStat]:
    """What is left of a job whose supervisor died: live processes of the supervisor's
    session or of the training's group. A process started before the supervisor cannot be its
    job's, whatever numbers it has. Pure."""
    return [
        s
        for s in stats
        if not s.is_zombie
        and ((sid is not None and s.sid == sid) or (pgid is not None and s.pgid == pgid))
        and (since is None or s.start >= since)
    ]


def training_group(stats: Iterable[ProcStat], supervisor: int) -> int | None:
    """The process group a supervisor runs its command in: its oldest live child that leads a
    group of its own in the supervisor's session. Pure."""
    leaders = [
        s
        for s in stats
        if s.ppid == supervisor and s.pgid == s.pid and s.sid == supervisor and not s.is_zombie
    ]
    return min(leaders, key=lambda s: (s.start, s.pid)).pid if leaders else None


def kill_orphans(
    *,
    sid: int | None,
    pgid: int | None,
    since: int | None,
    wait: float = ORPHAN_KILL_WAIT,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    proc: str = PROC,
) -> list[int]:
    """SIGKILL a dead supervisor's job (``orphans``) and wait up to ``wait`` seconds for it to
    be gone; the PIDs still alive (empty when it is all gone). Zombies count as gone: these
    processes are not ours to reap."""
    deadline = clock() + wait
    while True:
        left = orphans(all_stats(proc), sid=sid, pgid=pgid, since=since)
        if not left or clock() >= deadline:
            return [s.pid for s in left]
        if pgid is not None and any(s.pgid == pgid for s in left):
            # The group at once, so a member forking right now cannot slip between kills.
            signal_group(pgid, signal.SIGKILL)
        signal_pids([s.pid for s in left], signal.SIGKILL)
        sleep(0.02)
