"""The local executor: starts queued local jobs in creation order, at most ``slots()``
at a time (default: one per GPU, else one), each under a supervisor process of its own
(``runner/supervisor.py``); on start (and every few seconds) fails running jobs whose
supervisor is gone, after killing what is left of their training.

Handover protocol: the job is claimed first (queued -> running in the store), its supervisor
is spawned, its PID and start time are recorded, and only then does the supervisor get the
command on stdin. If the job was cancelled in between, it ends cancelled there, and the
supervisor gets EOF and runs nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from trainmon.errors import Conflict, TrainmonError
from trainmon.models import Job
from trainmon.runner import proc
from trainmon.runner.executor import Executor, ExecutorService, FileLog, Resources
from trainmon.runner.gpus import choose_max_concurrent, count_gpus
from trainmon.runner.logfile import diagnostics_path, log_path, private_dirs, remove_log

if TYPE_CHECKING:
    from trainmon.settings import Settings

log = logging.getLogger("trainmon.runner")

Clock = Callable[[], float]
SUPERVISOR = (sys.executable, "-m", "trainmon.runner.supervisor")
TICK_SECONDS = 0.25
RECONCILE_SECONDS = 2.0
# A running job with no supervisor recorded is mid-handover for this long (another server on
# the same database may be starting it); after that its starter is taken to be gone.
HANDOVER_SECONDS = 30.0

# Supervisors this process spawned and has not reaped yet. Shared by every executor in the
# process, so one stopped and started again (tests, a reload) still reaps its predecessor's.
_spawned: set[int] = set()
_spawned_lock = threading.Lock()


def reap_spawned() -> list[int]:
    """Reap supervisors of ours that exited (else they stay zombies); the PIDs reaped."""
    reaped: list[int] = []
    with _spawned_lock:
        for pid in list(_spawned):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                _spawned.discard(pid)
                reaped.append(pid)
    return reaped


def dead_supervisor_error(job: Job, killed: int = 0) -> str:
    pid = job.supervisor_pid
    if pid is None:
        return "supervisor died without reporting (it was never recorded)"
    what = f"process group {job.training_pgid}" if job.training_pgid else "its session"
    fate = (
        f"the server killed {killed} process(es) of its training ({what})"
        if killed
        else "no process of its training was left"
    )
    return f"supervisor died without reporting (pid {pid}); {fate}"


def orphan_scope(job: Job, stat: proc.ProcStat | None) -> tuple[int | None, int | None]:
    """``(sid, pgid)`` to kill for a job whose supervisor is gone. The supervisor led a session
    of its own, and a session (or group) number stays taken while a member lives; but if its
    PID now belongs to another live process, that session is not the job's. Pure."""
    sid = job.supervisor_pid
    reused = stat is not None and not stat.is_zombie and stat.start != job.supervisor_start
    return (None if reused else sid), job.training_pgid


class LocalExecutor:
    """``start()`` reconciles, then polls in a daemon thread; ``stop()`` ends the thread and
    leaves running supervisors (and their trainings) alone."""

    name = "local"

    def __init__(
        self,
        service: ExecutorService,
        *,
        data_dir: Path,
        server_url: str,
        token: str,
        max_concurrent: int | None = None,
        tick_seconds: float = TICK_SECONDS,
        reconcile_seconds: float = RECONCILE_SECONDS,
        supervisor: Sequence[str] = SUPERVISOR,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        gpu_counter: Callable[[], int] = count_gpus,
    ) -> None:
        self.service = service
        self.data_dir = data_dir
        self.server_url = server_url.rstrip("/")
        self.token = token
        self._max_concurrent = None if max_concurrent is None else max(1, max_concurrent)
        self._gpu_counter = gpu_counter
        self._gpus: int | None = None
        self.wall_clock = wall_clock
        self.tick_seconds = tick_seconds
        self.reconcile_seconds = reconcile_seconds
        self.supervisor = tuple(supervisor)
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_reconcile: float | None = None

    def gpus(self) -> int:
        """GPUs ``nvidia-smi`` lists, asked once, when first needed (not while settings are
        built: it can take seconds)."""
        if self._gpus is None:
            self._gpus = self._gpu_counter()
        return self._gpus

    def slots(self) -> int:
        """Jobs run at once: as set, else one per GPU (at least one)."""
        if self._max_concurrent is None:
            self._max_concurrent = choose_max_concurrent(self.gpus())
        return self._max_concurrent

    def resources(self) -> Resources:
        return Resources(
            name=self.name,
            slots=self.slots(),
            running=self.service.count_running(self.name),
            gpus=self.gpus(),
        )

    def logs(self, job: Job) -> FileLog:
        return FileLog(log_path(self.data_dir, job.id))

    def cancel(self, job: Job) -> None:
        """Nothing to send: the supervisor heartbeats every 0.5 s and the answer carries
        ``cancelRequested``; it then stops the training's process group itself."""

    def discard(self, job_id: str) -> None:
        """A job was deleted: its log files go too."""
        remove_log(self.data_dir, job_id)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._guarded(self.reconcile)
        self._last_reconcile = self.clock()
        self._thread = threading.Thread(target=self._loop, name="trainmon-executor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        reap_spawned()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._guarded(self.poll)
            self._stop.wait(self.tick_seconds)

    @staticmethod
    def _guarded(step: Callable[[], object]) -> None:
        try:
            step()
        except Exception:  # a database hiccup must not end the executor
            log.exception("local executor: %s failed", getattr(step, "__name__", step))

    # -- one pass -----------------------------------------------------------------------

    def poll(self) -> list[Job]:
        """Reap, reconcile now and then, and claim and submit what fits; the jobs started."""
        reap_spawned()
        now = self.clock()
        if self._last_reconcile is None or now - self._last_reconcile >= self.reconcile_seconds:
            self._last_reconcile = now
            self.reconcile()
        self.record_pgids()
        started: list[Job] = []
        while not self._stop.is_set() and self.service.count_running(self.name) < self.slots():
            job = self.service.claim_next_queued(self.name)
            if job is None:
                break
            running = self.submit(job)
            if running is not None:
                started.append(running)
        return started

    def reconcile(self) -> list[Job]:
        """Fail running local jobs whose supervisor is gone (or whose PID now belongs to
        another process); the jobs failed."""
        reap_spawned()
        failed: list[Job] = []
        for job in self.service.running_jobs_of(self.name):
            pid, start = job.supervisor_pid, job.supervisor_start
            if pid is not None and proc.is_alive(pid, start):
                continue
            if pid is None and self._in_handover(job):
                continue
            # Its training must not outlive it (the slot would be free while the GPU is not):
            # kill what is left of the job, and mark it failed only once that is all gone.
            sid, pgid = orphan_scope(job, None if pid is None else proc.read_stat(pid))
            before = proc.orphans(proc.all_stats(), sid=sid, pgid=pgid, since=start or None)
            left = proc.kill_orphans(sid=sid, pgid=pgid, since=start or None)
            if left:
                log.warning("job %s: processes %s survive SIGKILL; retrying later", job.id, left)
                continue
            # Conflict/NotFound: it reported its end (or was removed) while we looked.
            with contextlib.suppress(TrainmonError):
                failed.append(self.service.fail(job.id, dead_supervisor_error(job, len(before))))
        return failed

    def record_pgids(self) -> None:
        """Store the training's process group of running jobs that have none stored yet."""
        missing = [
            j
            for j in self.service.running_jobs_of(self.name)
            if j.training_pgid is None and j.supervisor_pid is not None
        ]
        if not missing:
            return
        stats = proc.all_stats()
        for job in missing:
            assert job.supervisor_pid is not None
            if not proc.is_alive(job.supervisor_pid, job.supervisor_start):
                continue  # the reconcile's business
            pgid = proc.training_group(stats, job.supervisor_pid)
            if pgid is not None:
                with contextlib.suppress(TrainmonError):
                    self.service.record_training_pgid(job.id, pgid)

    def _in_handover(self, job: Job) -> bool:
        started = job.started_at if job.started_at is not None else job.updated_at
        return self.wall_clock() - started < HANDOVER_SECONDS

    def submit(self, job: Job) -> Job | None:
        """Start a claimed job's supervisor and hand it the job; ``None`` if it did not
        start (it is then failed with the reason, or it was cancelled meanwhile)."""
        command = job.command
        if command is None:
            self._fail_quietly(job, "a local job without a command")
            return None
        path = log_path(self.data_dir, job.id)
        try:
            private_dirs(path.parent)
            pid, stdin = self._spawn(job, diagnostics_path(path))
        except OSError as exc:
            self._fail_quietly(job, f"could not start the supervisor: {exc}")
            return None
        start = proc.start_time(pid)
        try:
            running = self.service.mark_launched(job.id, pid, start if start is not None else 0)
        except Conflict:  # cancelled since the claim (and now ended so)
            os.close(stdin)  # EOF: the supervisor exits without running anything
            self._kill(pid)
            return None
        except Exception:
            os.close(stdin)
            self._kill(pid)
            raise
        spec = {
            "argv": list(command.argv),
            "cwd": command.cwd,
            "env": dict(command.env),
            "grace": job.grace_seconds,
            "token": self.token,
        }
        try:
            with os.fdopen(stdin, "wb") as pipe:
                pipe.write(json.dumps(spec).encode())
        except OSError as exc:  # it died before reading: the reconciler would say so later
            self._kill(pid)
            self._fail_quietly(running, f"the supervisor did not take the job: {exc}")
            return None
        return running

    def _spawn(self, job: Job, diagnostics: Path) -> tuple[int, int]:
        """The supervisor as a session leader, detached from the server: stdin is the
        handover pipe, stdout is dropped, stderr (its own crashes) goes to ``diagnostics``."""
        argv = [
            *self.supervisor,
            "--job-id",
            job.id,
            "--url",
            self.server_url,
            "--data-dir",
            str(self.data_dir),
        ]
        read_end, write_end = os.pipe()
        try:
            pid = os.posix_spawn(
                argv[0],
                argv,
                dict(os.environ),
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read_end, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (
                        os.POSIX_SPAWN_OPEN,
                        2,
                        str(diagnostics),
                        os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                        0o600,
                    ),
                ],
                setsid=True,
            )
        except OSError:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        with _spawned_lock:
            _spawned.add(pid)
        return pid, write_end

    @staticmethod
    def _kill(pid: int) -> None:
        # Its own session and group, and nothing started in it yet: SIGKILL is enough.
        proc.signal_group(pid, signal.SIGKILL)

    def _fail_quietly(self, job: Job, error: str) -> None:
        with contextlib.suppress(TrainmonError):
            self.service.fail(job.id, error)


def create(service: ExecutorService, settings: Settings) -> Executor:
    """The registered factory (``runner/executor.py``)."""
    return LocalExecutor(
        service,
        data_dir=settings.data_dir,
        server_url=settings.url,
        token=settings.token,
        max_concurrent=settings.max_concurrent,
    )
