"""The executor interface: what runs a queued job's command somewhere and reports on it.

The server knows executors only through ``Executor`` and the registry below, so a new one
(Ray, Slurm) is a module implementing it plus one line in ``EXECUTORS``, and its dependencies
are imported only when it is chosen (``trainmon serve --executor NAME``). Jobs that report
through the SDK have no executor (``job.executor == "sdk"``): nothing runs them.

The life of a job under an executor: ``poll`` (called every tick by the executor's own loop)
claims the oldest queued job of its name in the store (``JobService.claim_next_queued``: queued
-> running in one transaction, so two servers on one database never start the same job),
``submit`` starts it, and the job's own reports move it on. ``cancel`` is called after a running
job was asked to stop; ``poll`` also fails running jobs whose process is gone.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from trainmon.models import Change, Job, JobStatus, Subscriber

if TYPE_CHECKING:
    from trainmon.settings import Settings

# name -> "module:factory"; the factory is called as factory(service, settings).
EXECUTORS: dict[str, str] = {"local": "trainmon.runner.local_executor:create"}
DEFAULT_EXECUTOR = "local"


class UnknownExecutor(ValueError):
    """A name no executor is registered under; settings say it in one line."""


@dataclass(frozen=True, slots=True)
class Resources:
    """What an executor can run: for ``GET /api/executors`` and the executor's own limit."""

    name: str
    slots: int  # jobs it runs at once
    running: int  # jobs of its name running now
    gpus: int  # GPUs it can see (0: none, or not detected yet)


class JobLog(Protocol):
    """A job's captured output, read as a terminal would show it."""

    def tail(self, lines: int) -> tuple[list[str], int]:
        """The last ``lines`` lines and the number of bytes logged in all."""
        ...

    def after(self, offset: int) -> tuple[str, int, int]:
        """``(text, next_offset, size)``: what was logged after byte ``offset``."""
        ...

    def chunks(self) -> Iterator[bytes]:
        """The whole log, as stored, for a download."""
        ...


class ExecutorService(Protocol):
    """What an executor may ask of ``trainmon.service.JobService``."""

    def claim_next_queued(self, executor: str) -> Job | None: ...
    def mark_launched(self, job_id: str, pid: int, pid_start: int) -> Job: ...
    def running_jobs_of(self, executor: str) -> list[Job]: ...
    def count_running(self, executor: str) -> int: ...
    def fail(self, job_id: str, error: str, exit_code: int | None = None) -> Job: ...
    def record_training_pgid(self, job_id: str, pgid: int) -> Job: ...


class Executor(Protocol):
    name: str

    def start(self) -> None:
        """Reconcile what the store says runs here, then poll in a loop of its own."""
        ...

    def stop(self) -> None:
        """End the loop; jobs already running keep running."""
        ...

    def poll(self) -> list[Job]:
        """One pass: fail jobs whose process is gone, claim and submit what fits; the jobs
        started."""
        ...

    def submit(self, job: Job) -> Job | None:
        """Start a claimed job; the job as running, or ``None`` if it could not start (it is
        then failed with the reason)."""
        ...

    def cancel(self, job: Job) -> None:
        """A running job of this executor was asked to stop (``job.cancel_requested``).
        Called on every change to such a job until it ends: it must be idempotent."""
        ...

    def logs(self, job: Job) -> JobLog:
        """The job's log; an empty one if it has none (yet), as an SDK job has none."""
        ...

    def discard(self, job_id: str) -> None:
        """A job was deleted: drop what this executor keeps of it (its log)."""
        ...

    def resources(self) -> Resources: ...


ExecutorFactory = Callable[[ExecutorService, "Settings"], Executor]


def check_executor_name(name: str) -> str:
    """``name`` if an executor is registered under it (nothing is imported);
    ``UnknownExecutor`` otherwise."""
    if name not in EXECUTORS:
        known = ", ".join(sorted(EXECUTORS))
        raise UnknownExecutor(f"unknown executor {name!r}: use one of {known}")
    return name


def executor_factory(name: str) -> ExecutorFactory:
    """The factory registered under ``name``, imported now."""
    module, _, attribute = EXECUTORS[check_executor_name(name)].partition(":")
    factory: ExecutorFactory = getattr(importlib.import_module(module), attribute)
    return factory


def executor_hooks(executor: Executor) -> Subscriber:
    """A service subscriber that tells ``executor`` what concerns it: a cancel request for a
    job it runs, a deleted job. Runs on the committing thread, so it only checks fields."""

    def hear(change: Change) -> None:
        if isinstance(change, Job):
            if (
                change.cancel_requested
                and change.status is JobStatus.RUNNING
                and change.executor == executor.name
            ):
                executor.cancel(change)
        else:
            executor.discard(change.job_id)

    return hear


class NoLog:
    """The log of a job nothing captured output for, for executors that keep no logs."""

    def tail(self, lines: int) -> tuple[list[str], int]:
        return [], 0

    def after(self, offset: int) -> tuple[str, int, int]:
        return "", offset, 0

    def chunks(self) -> Iterator[bytes]:
        return iter(())


class FileLog:
    """A log file the local supervisor writes (``runner/logfile.py``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def tail(self, lines: int) -> tuple[list[str], int]:
        from trainmon.runner.logfile import tail_lines

        return tail_lines(self.path, lines)

    def after(self, offset: int) -> tuple[str, int, int]:
        from trainmon.runner.logfile import read_after

        return read_after(self.path, offset)

    def chunks(self) -> Iterator[bytes]:
        from trainmon.runner.logfile import iter_all

        return iter_all(self.path)
