"""How a supervised command ended, in the words the job records. Pure."""

from __future__ import annotations

import signal
from collections import deque
from dataclasses import dataclass

from trainmon.runner.logfile import display_line
from trainmon.runner.tqdm_parse import parse_bar
from trainmon.wire import end_fields

ERROR_LINES = 20
ERROR_CHARS = 4000


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # "completed" | "failed" | "cancelled"
    exit_code: int | None
    error: str | None
    end_reason: str

    def to_json(self) -> dict[str, object]:
        return end_fields(
            self.status,
            error=self.error,
            exit_code=self.exit_code,
            end_reason=self.end_reason,
            with_nulls=True,
        )


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def format_seconds(seconds: float) -> str:
    return f"{seconds:g} s"


def how_it_exited(returncode: int) -> str:
    """``exit code 1`` or ``SIGKILL`` from a ``Popen``-style return code (negative: signal)."""
    return f"exit code {returncode}" if returncode >= 0 else signal_name(-returncode)


def error_tail(stderr: bytes, lines: int = ERROR_LINES, chars: int = ERROR_CHARS) -> str:
    """The last lines of stderr as a terminal shows them, for the job's error; progress bars
    are left out (tqdm writes to stderr too)."""
    shown = deque((display_line(raw).rstrip() for raw in stderr.split(b"\n")), maxlen=lines * 4)
    kept = [line for line in shown if line.strip() and parse_bar(line) is None][-lines:]
    text = "\n".join(kept)
    return text[-chars:]


def decide(
    *,
    returncode: int | None,
    grace: float,
    started: bool = False,
    cancelled: bool = False,
    killed: bool = False,
    stopped_by: str | None = None,
    launch_error: str | None = None,
    stderr_tail: str = "",
) -> Outcome:
    """The job's end from what happened to its process.

    ``cancelled``: a cancel made us send SIGTERM. ``killed``: the grace period ran out and
    SIGKILL followed. ``stopped_by``: why the supervisor stopped the job without a cancel
    (it was told to stop itself, or the server ended the job). ``returncode`` is the main
    process's, ``None`` if it never started or (``started``) if its status is unknown: only
    a launch error makes a job "not started", never a status that went missing.
    """
    if launch_error is not None or (returncode is None and not started):
        reason = launch_error or "the command did not start"
        return Outcome("failed", None, reason, f"not started: {reason}")
    exit_code = returncode if returncode is not None and returncode >= 0 else None
    how = "an unknown exit status" if returncode is None else how_it_exited(returncode)
    if cancelled or stopped_by is not None:
        if returncode == -signal.SIGTERM:
            ended = "SIGTERM after cancel" if cancelled else "SIGTERM"
        else:
            ended = f"{how} after SIGTERM"
        if killed:
            ran_out = f"grace period of {format_seconds(grace)} ran out"
            if returncode == -signal.SIGKILL:
                ended = f"SIGKILL: {ran_out}"
            else:  # the main process ended in time, some of its children did not
                ended = f"{ended}; SIGKILL to what was left: {ran_out}"
        if cancelled:
            return Outcome("cancelled", exit_code, None, ended)
        reason = f"{stopped_by}; {ended}"
        return Outcome("failed", exit_code, reason, reason)
    if returncode == 0:
        return Outcome("completed", 0, None, how)
    if returncode is None:
        return Outcome("failed", None, how, how)
    error = stderr_tail or how
    if returncode < 0 and not stderr_tail.endswith(how):
        error = f"{stderr_tail}\nkilled by {how}" if stderr_tail else f"killed by {how}"
    return Outcome("failed", exit_code, error, how)


def launch_error_text(argv: list[str], cwd: str | None, exc: OSError) -> str:
    """Why a command could not start, in one line."""
    if not argv:
        return "empty command"
    if isinstance(exc, FileNotFoundError):
        if cwd is not None and exc.filename == cwd:
            return f"working directory not found: {cwd}"
        return f"command not found: {argv[0]}"
    if isinstance(exc, PermissionError):
        if cwd is not None and exc.filename == cwd:
            return f"working directory not accessible: {cwd}"
        return f"command is not executable: {argv[0]}"
    if isinstance(exc, NotADirectoryError) and cwd is not None:
        return f"working directory is not a directory: {cwd}"
    return f"could not start {argv[0]}: {exc.strerror or exc}"
