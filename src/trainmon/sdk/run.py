"""A training run as the script sees it: ``init`` → ``run.log`` → finish.

``log`` is the hot path and does no I/O: a cancel-flag check, a type check per value, a
clock read and one ``list.append``. The ``Flusher`` thread does everything else.

How the process ends decides the job's end (``exit_outcome``). What the SDK can observe in
CPython 3.11: an exception through a ``with`` block or ``track`` loop (``SystemExit`` with its
code included); an uncaught exception (``sys.excepthook``); a SIGTERM the script does not
handle (our handler, installed only over the default one, then the default is restored and
the signal re-raised). What it cannot: the code of a ``sys.exit(n)`` that unwinds past the
SDK — ``SystemExit`` skips ``sys.excepthook``, the interpreter clears it before ``atexit``
handlers run, and ``sys.exc_info()``/``sys.last_value`` are empty there. The ``__main__``
frame still shows *that* the script ended by an exception rather than by returning, so such
a run is reported completed without an ``exitCode`` and says why in ``endReason``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from trainmon import local
from trainmon.sdk.errors import JobCancelled
from trainmon.sdk.flusher import FlushConfig, Flusher
from trainmon.sdk.transport import HttpTransport, Response, Transport, TransportError
from trainmon.sdk.values import Point, coerce_scalar, coerce_scalars, coerce_step

_time = time.time


def _env_seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


def describe(exc: BaseException) -> str:
    """``"<ExcType>: <message>"``, the job's error text."""
    text = str(exc).strip()
    name = type(exc).__name__
    return (f"{name}: {text}" if text else name)[:4000]


_INT32 = range(-(2**31), 2**31)
UNSEEN_EXIT = "exited through sys.exit() or SystemExit; its status is not visible to the SDK"


@dataclass(frozen=True, slots=True)
class Ending:
    """How a run ends: the final report's ``status``, ``error``, ``exitCode``, ``endReason``."""

    status: str
    error: str | None = None
    exit_code: int | None = None
    end_reason: str | None = None


def exit_outcome(exc: BaseException | None, *, cancelled: bool, at_exit: bool) -> Ending:
    """The job's end for ``exc`` (``None``: no exception). Pure.

    ``at_exit``: the process is ending because of ``exc``, so the interpreter's exit code is
    known (1 for an uncaught exception, 0 for none). Inside a ``with`` block it is not, except
    for ``SystemExit``, which carries it.
    """
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None or code == 0:
            return Ending("cancelled" if cancelled else "completed", exit_code=0)
        if isinstance(code, int):  # bool included: sys.exit(True) exits 1
            number = int(code)
            return Ending(
                "failed", f"exited with code {number}", number if number in _INT32 else None
            )
        return Ending("failed", str(code)[:4000] or describe(exc), 1)  # sys.exit("message")
    if exc is None:
        return Ending("cancelled" if cancelled else "completed", exit_code=0 if at_exit else None)
    if isinstance(exc, JobCancelled) or cancelled:
        return Ending("cancelled", exit_code=1 if at_exit else None)
    if isinstance(exc, KeyboardInterrupt) and at_exit:
        # The interpreter then dies by SIGINT: no exit code, like any death by a signal.
        return Ending("failed", describe(exc), None, "SIGINT (KeyboardInterrupt)")
    return Ending("failed", describe(exc), 1 if at_exit else None)


def ended_by_exception(frame: FrameType | None) -> bool | None:
    """Did this finished frame end by an exception rather than by returning? ``None``: unknown.

    A frame that returned stopped at a ``RETURN_VALUE``; one that an exception left stopped
    at the raising instruction. Read-only, and costs nothing while the script runs.
    """
    if frame is None:
        return None
    import dis  # only at exit: init() should not pay for it

    code = frame.f_code.co_code
    if not 0 <= frame.f_lasti < len(code):
        return None
    return dis.opname[code[frame.f_lasti]] != "RETURN_VALUE"


def _main_frame() -> FrameType | None:
    """The ``__main__`` module's own frame, if this thread's stack runs in it."""
    frame: FrameType | None = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__main__":
            return frame
        frame = frame.f_back
    return None


class Run:
    """One job being reported. Made by ``trainmon.init``; use it as a context manager."""

    def __init__(
        self,
        *,
        job_id: str,
        name: str,
        url: str,
        transport: Transport,
        create_body: dict[str, Any] | None,
        total_steps: int | None,
        on_cancel: Callable[[], object] | None,
        journal_dir: Path,
        flush_interval: float,
        heartbeat_interval: float,
        exit_timeout: float,
    ) -> None:
        self.id = job_id
        self.name = name
        self.url = url
        self.reporter = f"sdk-{uuid.uuid4().hex[:8]}"
        self._on_cancel = on_cancel
        self._cancel_requested = False
        self._cancel_pending = False  # seen, and log() has not acted on it yet
        self._throttled = False
        self._drained = threading.Event()
        # The hot path's only shared read: "something needs log()'s attention" (a cancel, or
        # back-pressure). Set by the flusher thread, recomputed by the slow path.
        self._stop = False
        self._finished = False
        self.attached = create_body is None  # launched by the runner, which sees the exit
        # Re-entrant: the SIGTERM handler may finish the run while the main thread is inside.
        self._finish_lock = threading.RLock()
        self._exit_timeout = exit_timeout
        self._buffer: list[Point] = []
        self._append = self._buffer.append
        self._flusher = Flusher(
            self._buffer,
            transport,
            job_id=job_id,
            reporter=self.reporter,
            url=url,
            journal_path=journal_dir / f"{job_id}-{self.reporter}.jsonl",
            create_body=create_body,
            total_steps=total_steps,
            on_cancel=self._cancel_seen,
            on_pressure=self._pressure,
            config=FlushConfig(
                flush_interval=flush_interval, heartbeat_interval=heartbeat_interval
            ),
        )

    def _start(self) -> None:
        self._flusher.start()
        self._flusher.wake()  # create the job and mark it running now, not in 0.5 s

    # -- the hot path ------------------------------------------------------------------

    def log(self, step: Any = None, loss: Any = None, **scalars: Any) -> None:
        """Record one point. Never blocks on the network; ``TypeError`` for a non-number."""
        if self._stop:
            self._attention()
        # `type(x) is float` first: the common case then pays one check, not two.
        if type(loss) is not float and loss is not None:
            loss = coerce_scalar("loss", loss)
        if type(step) is not int and step is not None:
            step = coerce_step(step)
        if scalars:
            for value in scalars.values():
                if type(value) is not float:
                    self._append((step, _time(), loss, coerce_scalars(scalars)))
                    return
            self._append((step, _time(), loss, scalars))
        else:
            self._append((step, _time(), loss, None))

    # -- cancellation --------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """The server asked this job to stop (checked by the flusher on every exchange)."""
        return self._cancel_requested

    def _cancel_seen(self) -> None:
        if not self._cancel_requested:
            self._cancel_requested = True
            self._cancel_pending = True
            self._stop = True

    def _pressure(self, on: bool) -> None:
        if on:
            self._drained.clear()
            self._throttled = True
            self._stop = True
        elif self._throttled:
            self._throttled = False
            self._stop = self._cancel_pending
            self._drained.set()

    def _attention(self) -> None:
        """The slow path of ``log``: wait out back-pressure, then act on a cancel."""
        if self._throttled:
            self._drained.wait(5.0)  # bounded: a stuck flusher must not hang training
            self._throttled = False
        if self._cancel_pending:
            if self._on_cancel is None:
                raise JobCancelled(self.id)
            # The script chose its own way out; tell it once, in its own thread.
            self._cancel_pending = False
            self._stop = self._throttled
            self._on_cancel()
            return
        self._stop = self._throttled or self._cancel_pending

    # -- finishing -----------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._finished

    def finish(
        self,
        status: str | None = None,
        error: str | None = None,
        *,
        exit_code: int | None = None,
        end_reason: str | None = None,
    ) -> None:
        """Deliver what is buffered and the final status (bounded by the exit timeout).

        ``status`` defaults to ``cancelled`` after a cancel request, else ``completed``.
        Whatever cannot be delivered stays in the journal for ``trainmon sync``. Never raises
        for I/O trouble (a full disk, a broken connection): training code must not die of it.
        """
        if status is None:
            status = "cancelled" if self._cancel_requested else "completed"
        if status not in ("completed", "failed", "cancelled"):
            raise ValueError(f"trainmon: cannot finish a run as {status!r}")
        with self._finish_lock:
            if self._finished:
                return
            self._finished = True
        extra: dict[str, Any] = {}
        if exit_code is not None:
            extra["exitCode"] = exit_code
        if end_reason is not None:
            extra["endReason"] = end_reason[:1000]
        self._close(status, error, extra)

    def hand_over(self) -> None:
        """Deliver what is buffered and leave the job's end to the runner's supervisor: it saw
        the process exit, with the code this process cannot see (a bare ``sys.exit(n)``)."""
        with self._finish_lock:
            if self._finished:
                return
            self._finished = True
        self._close(None, None, {})

    def _close(self, status: str | None, error: str | None, extra: dict[str, Any]) -> None:
        try:
            left = self._flusher.close(status, error, self._exit_timeout, extra=extra)
        except OSError as exc:  # defensive: the flusher already keeps I/O errors to itself
            left = 0
            _say(f"trainmon: could not finish job {self.id} cleanly: {describe(exc)}")
        _forget(self)
        if left:
            _say(
                f"trainmon: {left:,} points of job {self.id} were not delivered to {self.url}; "
                f"they are saved in {self._flusher._journal_path}; run `trainmon sync` to "
                "upload them"
            )

    def finish_after(self, exc: BaseException | None, *, at_exit: bool = False) -> None:
        """Finish with the status an exception (or none) implies."""
        end = exit_outcome(exc, cancelled=self._cancel_requested, at_exit=at_exit)
        self.finish(end.status, end.error, exit_code=end.exit_code, end_reason=end.end_reason)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self.finish_after(exc)
        # A cancel ends the block cleanly: the script goes on after `with` (run.cancelled).
        return isinstance(exc, JobCancelled) and exc.job_id == self.id

    def __repr__(self) -> str:
        return f"<trainmon.Run {self.id} {self.name!r}>"


# -- the process-wide current run and exit handling ---------------------------------------

_lock = threading.RLock()  # re-entrant for the SIGTERM handler, which runs in the main thread
_active: list[Run] = []
_uncaught: BaseException | None = None
_hooked = False
_main: FrameType | None = None  # the __main__ frame, to tell a SystemExit from a clean end


def _say(message: str) -> None:
    # A closed or broken stderr must not turn a finish into a crash.
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr, flush=True)


def _forget(run: Run) -> None:
    with _lock:
        if run in _active:
            _active.remove(run)


def current_run() -> Run | None:
    with _lock:
        return _active[-1] if _active else None


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    global _uncaught
    _uncaught = exc
    if isinstance(exc, JobCancelled):
        print(f"trainmon: {exc}; stopped", file=sys.stderr, flush=True)
        return
    _previous_hook(exc_type, exc, tb)


_previous_hook = sys.excepthook


def _at_exit() -> None:
    """Finish every run the script left open; never changes the exit code."""
    unseen_exit = _uncaught is None and ended_by_exception(_main) is True
    for run in list(_active):
        try:
            if unseen_exit and run.attached:
                run.hand_over()
            elif unseen_exit:
                run.finish(end_reason=UNSEEN_EXIT)
            else:
                run.finish_after(_uncaught, at_exit=True)
        except BaseException as exc:  # exit must stay the script's own
            _say(f"trainmon: could not finish job {run.id}: {describe(exc)}")


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Finish the open runs as killed, then die by the signal as the default handler would."""
    for run in list(_active):
        try:
            run.finish("failed", "killed by SIGTERM", end_reason="SIGTERM")
        except BaseException as exc:
            _say(f"trainmon: could not finish job {run.id}: {describe(exc)}")
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_sigterm() -> None:
    """Only over the default disposition, and only from the main thread (Python's rule)."""
    if threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError):  # an interpreter without signal support
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)


def _install_hooks(*, own_job: bool) -> None:
    global _hooked, _previous_hook, _main
    if own_job:
        # A runner-launched job's supervisor sees the signal itself and reports it.
        _install_sigterm()
    if _hooked:
        return
    _hooked = True
    _main = _main_frame()
    _previous_hook = sys.excepthook
    sys.excepthook = _excepthook
    atexit.register(_at_exit)


class _Unusable:
    """The transport for a URL that cannot work: every send fails, points go to the journal."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    def __call__(self, method: str, path: str, body: bytes | None = None) -> Response:
        raise TransportError(self._reason)


def init(
    name: str | None = None,
    total_steps: int | None = None,
    config: Mapping[str, Any] | None = None,
    tags: Iterable[str] | None = None,
    url: str | None = None,
    token: str | None = None,
    *,
    on_cancel: Callable[[], object] | None = None,
    transport: Transport | None = None,
) -> Run:
    """Create the job (or attach to the runner's ``$TRAINMON_JOB_ID``) and mark it running.

    ``url`` and ``token`` default to ``$TRAINMON_URL``/``$TRAINMON_TOKEN``, then the local
    server's data directory. Never raises for an unreachable server or a bad token: those are
    reported once on stderr and the points wait in the journal. ``on_cancel`` is called (once,
    from ``run.log``) instead of raising ``JobCancelled`` when the job is cancelled.
    """
    attach_to = os.environ.get("TRAINMON_JOB_ID", "").strip() or None
    if name is None:
        name = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "script"
    if not isinstance(name, str) or not name.strip():
        raise ValueError("trainmon: init(name=...) must be a non-empty string")
    if total_steps is not None:
        total_steps = coerce_step(total_steps)
    tag_list = [str(t) for t in tags] if tags is not None else []
    url = (url or local.server_url()).rstrip("/")
    if token is None:
        token = local.read_token()
    if transport is None:
        try:
            transport = HttpTransport(url, token)
        except ValueError as exc:
            print(str(exc), file=sys.stderr, flush=True)
            transport = _Unusable(str(exc))
    job_id = attach_to or uuid.uuid4().hex[:12]
    create_body: dict[str, Any] | None = None
    if attach_to is None:
        create_body = {"id": job_id, "name": name, "config": dict(config or {}), "tags": tag_list}
        if total_steps is not None:
            create_body["totalSteps"] = total_steps
    previous = current_run()
    if previous is not None:
        previous.finish()
    run = Run(
        job_id=job_id,
        name=name,
        url=url,
        transport=transport,
        create_body=create_body,
        total_steps=total_steps,
        on_cancel=on_cancel,
        journal_dir=local.data_dir() / "journal",
        flush_interval=_env_seconds("TRAINMON_FLUSH_SECONDS", 0.5),
        heartbeat_interval=_env_seconds("TRAINMON_HEARTBEAT_SECONDS", 10.0),
        exit_timeout=_env_seconds("TRAINMON_EXIT_TIMEOUT", 10.0),
    )
    with _lock:
        _active.append(run)
    _install_hooks(own_job=attach_to is None)
    run._start()
    return run


def finish(status: str | None = None, error: str | None = None) -> None:
    """Finish the current run, if any (``completed``, or ``cancelled`` after a cancel
    request)."""
    run = current_run()
    if run is not None:
        run.finish(status, error)
