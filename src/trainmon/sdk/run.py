"""A training run as the script sees it: ``init`` → ``run.log`` → finish.

``log`` is the hot path and does no I/O: a cancel-flag check, a type check per value, a
clock read and one ``list.append``. The ``Flusher`` thread does everything else.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from trainmon import local
from trainmon.sdk.errors import JobCancelled
from trainmon.sdk.flusher import Flusher
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
        self._finish_lock = threading.Lock()
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
            flush_interval=flush_interval,
            heartbeat_interval=heartbeat_interval,
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

    def finish(self, status: str | None = None, error: str | None = None) -> None:
        """Deliver what is buffered and the final status (bounded by the exit timeout).

        ``status`` defaults to ``cancelled`` after a cancel request, else ``completed``.
        Whatever cannot be delivered stays in the journal for ``trainmon sync``.
        """
        with self._finish_lock:
            if self._finished:
                return
            self._finished = True
        if status is None:
            status = "cancelled" if self._cancel_requested else "completed"
        if status not in ("completed", "failed", "cancelled"):
            raise ValueError(f"trainmon: cannot finish a run as {status!r}")
        left = self._flusher.close(status, error, self._exit_timeout)
        _forget(self)
        if left:
            print(
                f"trainmon: {left:,} points of job {self.id} were not delivered to {self.url}; "
                f"they are saved in {self._flusher._journal_path}; run `trainmon sync` to "
                "upload them",
                file=sys.stderr,
                flush=True,
            )

    def finish_after(self, exc: BaseException | None) -> None:
        """Finish with the status an exception (or none) implies."""
        if exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
            self.finish()
        elif isinstance(exc, JobCancelled) or self._cancel_requested:
            self.finish("cancelled")
        else:
            self.finish("failed", describe(exc))

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

_lock = threading.Lock()
_active: list[Run] = []
_uncaught: BaseException | None = None
_hooked = False


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
    for run in list(_active):
        try:
            run.finish_after(_uncaught)
        except BaseException as exc:  # exit must stay the script's own
            print(f"trainmon: could not finish job {run.id}: {describe(exc)}", file=sys.stderr)


def _install_hooks() -> None:
    global _hooked, _previous_hook
    if _hooked:
        return
    _hooked = True
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
    """Create the job (or attach to ``$TRAINMON_JOB_ID``) and report it running."""
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
    _install_hooks()
    run._start()
    return run


def finish(status: str | None = None, error: str | None = None) -> None:
    """Finish the current run, if any."""
    run = current_run()
    if run is not None:
        run.finish(status, error)
