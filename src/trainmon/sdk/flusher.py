"""The background half of a run: batches logged points and delivers them, never losing one.

Order of delivery is strict FIFO: the oldest requests wait in memory, and once memory holds
``memory_limit`` bytes, newer ones (and, while the journal is not empty, every newer one)
are appended to the on-disk journal, which is drained before memory is used again. A request
leaves the queue only when the server acknowledged it, so a lost answer means a resend of the
same sequence number, which the server applies once.

A journal that cannot be written (disk full, folder unwritable) must not stop the training:
requests then stay in memory (behind whatever the journal still holds, so FIFO is kept), up
to ``fallback_limit`` bytes, beyond which the oldest points are dropped and counted. Nothing
here raises ``OSError`` to the caller.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainmon.sdk.journal import Entry, Journal, append_private, encode_line, make_private_dir
from trainmon.sdk.transport import Response, Transport, TransportError
from trainmon.sdk.values import Point, dumps
from trainmon.wire import (
    CREATE_PATH,
    Kind,
    SeqCounter,
    backoff,
    encode_batch,
    end_fields,
    kind_of,
    parse_answer,
    progress_path,
)

Clock = Callable[[], float]


def _stderr(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # a closed or broken stderr is not fatal
        print(message, file=sys.stderr, flush=True)


def _os_error(exc: OSError) -> str:
    return f"{type(exc).__name__}: {exc.strerror or exc}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FlushConfig:
    """The flusher's tunables; the defaults are what a training gets."""

    flush_interval: float = 0.5  # seconds between batches
    heartbeat_interval: float = 10.0  # an empty batch after this long without any contact
    max_batch_points: int = 10_000
    memory_limit: int = 4 << 20  # bytes queued in memory before the journal takes the rest
    high_water: int = 100_000  # buffered points at which log() is made to wait
    backoff_max: float = 3.0  # the longest wait between attempts while the server is away
    fallback_limit: int = 256 << 20  # bytes kept in memory when the journal cannot be written


class Flusher:
    """Owns every request of one reporter; ``tick`` is the unit of work, the thread repeats it."""

    POLL = 0.025  # how often the thread looks at the buffer: bounds its growth between batches

    def __init__(
        self,
        buffer: list[Point],
        transport: Transport,
        *,
        job_id: str,
        reporter: str,
        url: str,
        journal_path: Path,
        config: FlushConfig | None = None,
        create_body: dict[str, Any] | None = None,
        total_steps: int | None = None,
        on_cancel: Callable[[], None] = lambda: None,
        on_pressure: Callable[[bool], None] = lambda on: None,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        warn: Callable[[str], None] = _stderr,
        journal_factory: Callable[[Path], Journal] = Journal,
    ) -> None:
        self._buffer = buffer
        self._transport = transport
        self.job_id = job_id
        self.reporter = reporter
        self._url = url
        self._journal_path = journal_path
        self._on_cancel = on_cancel
        self._on_pressure = on_pressure
        self.config = config = config or FlushConfig()
        self._high_water = config.high_water
        self._low_water = config.high_water // 4
        self._clock = clock
        self._sleep = sleep  # used only when closing without the thread (tests)
        self._warn = warn
        self._max_batch = config.max_batch_points
        self._memory_limit = config.memory_limit
        self._fallback_limit = config.fallback_limit
        self._journal_factory = journal_factory
        self._progress_path = progress_path(job_id)

        self._lock = threading.Lock()
        self._mem: deque[Entry] = deque()
        self._mem_bytes = 0
        self._journal: Journal | None = None
        # Set once the journal failed to take a write: from then on memory is the only queue.
        self._disk_error: str | None = None
        self._overflow: deque[Entry] = deque()  # newer than the journal's entries
        self._overflow_bytes = 0
        self._in_flight: Entry | None = None  # never dropped while being sent
        self.dropped_points = 0  # oldest points dropped: no disk and memory at its cap
        self.lost_points = 0  # points neither delivered nor saved when the run ended
        self._seq = SeqCounter()
        self._last_step = -1
        self._failures = 0
        self._next_attempt = 0.0
        now = clock()
        self._last_pack = now
        self._last_contact = now
        self._halted: str | None = None  # set when retrying cannot help (bad token, no job)
        self._warned: set[str] = set()
        self._abandoned = False
        self.delivered_points = 0
        self.delivered_batches = 0
        self.rejected_batches = 0

        self._wake = threading.Event()
        self._closing: tuple[str | None, str | None, float, dict[str, Any] | None] | None = None
        self._thread: threading.Thread | None = None

        if create_body is not None:
            self._enqueue(Entry(CREATE_PATH, dumps(create_body), 0, Kind.CREATE))
        first: dict[str, Any] = {"status": "running"}
        if total_steps is not None:
            first["totalSteps"] = total_steps
        self._enqueue(self._batch([], first))

    # -- the thread ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trainmon-flusher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while self._closing is None:
            try:
                self.tick()
            except Exception as exc:  # the thread must outlive any surprise, or points stop
                self._warn_once("internal", f"trainmon: reporter error ({exc!r}); still trying")
            self._wake.wait(self.POLL)
            self._wake.clear()
        status, error, deadline, extra = self._closing
        try:
            self.drain(status, error, deadline, sleep=self._nap, extra=extra)
        except Exception as exc:
            self._warn_once("internal", f"trainmon: reporter error ({exc!r}) while finishing")

    def _nap(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def close(
        self,
        status: str | None,
        error: str | None,
        timeout: float,
        *,
        extra: dict[str, Any] | None = None,
    ) -> int:
        """Finish from the caller's thread; returns how many points were left in the journal.

        ``extra`` rides on the final report (``exitCode``, ``endReason``). ``status`` None:
        deliver what is left and leave the job's end to someone who knows it (the runner).
        Never raises for I/O trouble: what could be neither sent nor saved is counted in
        ``lost_points``.
        """
        deadline = self._clock() + timeout
        self._closing = (status, error, deadline, extra)
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout + 1.0)
            if self._thread.is_alive():
                # Stuck in a request to a hung server: take over and keep what is left.
                self._warn_once("hung", f"trainmon: {self._url} did not answer in time")
        else:
            self.drain(status, error, deadline, sleep=self._sleep, extra=extra)
        left = self.abandon()
        if self.dropped_points:
            self._warn(
                f"trainmon: {self.dropped_points:,} points of job {self.job_id} were dropped "
                f"(the journal could not be written: {self._disk_error}, and memory was full)"
            )
        return left

    # -- one step of work ----------------------------------------------------------------

    def tick(self, *, budget: float = 0.2) -> None:
        """Pack the buffer when due, heartbeat when quiet, deliver for up to ``budget`` s."""
        now = self._clock()
        with self._lock:
            backlog = len(self._buffer)
            if backlog >= self._high_water:
                # The loop logs faster than points can be encoded: make log() wait for us
                # rather than let the buffer eat memory (only tight synthetic loops get here).
                self._on_pressure(True)
            if backlog >= self._max_batch or now - self._last_pack >= self.config.flush_interval:
                self._pack(None)
            quiet = not self._queued()
            heartbeat = (
                quiet
                and self._halted is None
                and now >= self._next_attempt
                and now - self._last_contact >= self.config.heartbeat_interval
            )
            if heartbeat:
                # An empty batch says "alive" and fetches cancel requests; never journaled.
                self._mem.append(self._batch([], {}))
        start = now
        while self._clock() - start < budget and self._deliver_one():
            pass

    def drain(
        self,
        status: str | None,
        error: str | None,
        deadline: float,
        *,
        sleep: Callable[[float], Any],
        extra: dict[str, Any] | None = None,
    ) -> None:
        """The final batch (all remaining points, then the status), delivered until ``deadline``."""
        with self._lock:
            final = end_fields(status, error=error)
            final.update(extra or {})
            self._pack(final)
        while True:  # at least one attempt, however short the deadline
            if self._deliver_one():
                continue
            with self._lock:
                if self._halted is not None or not self._queued():
                    return
            if self._clock() >= deadline:
                return
            sleep(max(0.0, min(self._next_attempt, deadline) - self._clock()))

    def abandon(self) -> int:
        """Stop delivering; what memory still holds goes to the journal. Points left on disk."""
        with self._lock:
            self._abandoned = True
            if self._halted is None and not self._queued() and self._journal is None:
                return 0
            undelivered = [e for e in (*self._mem, *self._overflow) if e.kind is not Kind.HEARTBEAT]
            self._mem.clear()
            self._overflow.clear()
            self._mem_bytes = self._overflow_bytes = 0
            for index, entry in enumerate(undelivered):
                if not self._to_journal(entry):
                    self.lost_points += sum(e.points for e in undelivered[index:])
                    break
            if self.lost_points:
                self._warn(
                    f"trainmon: {self.lost_points:,} points of job {self.job_id} could be "
                    f"neither delivered to {self._url} nor saved ({self._disk_error})"
                )
            if self._journal is None:
                return 0
            left = self._journal.pending_points if self._journal.pending else 0
            self._journal.close()
            return left

    # -- internals -----------------------------------------------------------------------

    def _batch(self, points: list[Point], extra: dict[str, object]) -> Entry:
        seq = self._seq.next()
        body = encode_batch(
            reporter=self.reporter, seq=seq, source="sdk", points=points, fields=extra
        )
        kind = kind_of(self._progress_path, extra, len(points))
        return Entry(self._progress_path, body, len(points), kind)

    def _pack(self, final: dict[str, Any] | None) -> None:
        """Move every buffered point into batches; ``final`` rides on the last one."""
        self._last_pack = self._clock()
        last = self._last_step
        sent_final = False
        while self._buffer:
            # Slice then delete the same count: both are single operations under the GIL, so
            # a point appended meanwhile by the training thread stays for the next batch.
            # One batch at a time, so only one batch of point objects is ever duplicated.
            chunk = self._buffer[: self._max_batch]
            del self._buffer[: len(chunk)]
            numbered: list[Point] = []
            for step, t, loss, metrics in chunk:
                if step is None:
                    step = last + 1  # an unnumbered log() is the next step
                last = step
                numbered.append((step, t, loss, metrics))
            self._last_step = last
            is_last = final is not None and not self._buffer
            self._enqueue(self._batch(numbered, final if is_last and final else {}))
            sent_final = sent_final or is_last
            # Checked per batch, not per tick: a tight loop outruns one long pack otherwise.
            backlog = len(self._buffer)
            if backlog >= self._high_water:
                self._on_pressure(True)
            elif backlog < self._low_water:
                self._on_pressure(False)
        if final is not None and not sent_final:
            self._enqueue(self._batch([], final))

    def _enqueue(self, entry: Entry) -> None:
        if self._disk_error is None:
            spilling = self._journal_pending() > 0 or self._halted is not None
            if spilling or self._mem_bytes + len(entry.body) > self._memory_limit:
                if self._failures and not spilling:
                    # A busy server just means a backlog on disk; say something only when away.
                    self._warn_once(
                        "spill",
                        f"trainmon: queueing points in {self._journal_path} until the server "
                        "is back",
                    )
                if self._to_journal(entry):
                    return
        if self._disk_error is not None and (self._journal_pending() or self._overflow):
            self._overflow.append(entry)  # behind what the journal holds: FIFO is kept
            self._overflow_bytes += len(entry.body)
        else:
            self._mem.append(entry)
            self._mem_bytes += len(entry.body)
        if self._disk_error is not None:
            self._cap_memory()

    def _to_journal(self, entry: Entry) -> bool:
        """Append to the journal; ``False`` (and memory from now on) if the disk refuses."""
        if self._disk_error is not None:
            return False
        try:
            if self._journal is None:
                self._journal = self._journal_factory(self._journal_path)
            self._journal.append(entry)
            return True
        except OSError as exc:
            self._disk_error = _os_error(exc)
            self._warn_once(
                "disk",
                f"trainmon: cannot write the journal {self._journal_path} ({self._disk_error}); "
                f"keeping points in memory (up to {self._fallback_limit >> 20} MB, oldest dropped "
                "beyond) and sending them while the server answers",
            )
            return False

    def _cap_memory(self) -> None:
        """Without a journal, drop the oldest points beyond ``fallback_limit`` (counted)."""
        while self._mem_bytes + self._overflow_bytes > self._fallback_limit:
            victim = next((e for e in self._mem if self._droppable(e)), None)
            if victim is not None:
                self._mem.remove(victim)
                self._mem_bytes -= len(victim.body)
            else:
                victim = next((e for e in self._overflow if self._droppable(e)), None)
                if victim is None:
                    return  # only requests that must not be dropped are left
                self._overflow.remove(victim)
                self._overflow_bytes -= len(victim.body)
            self.dropped_points += victim.points
            self._warn_once(
                "dropping",
                f"trainmon: memory for undelivered points is full ({self._fallback_limit >> 20} "
                "MB) and the journal cannot be written: dropping the oldest points (counted)",
            )

    def _droppable(self, entry: Entry) -> bool:
        # Never the job's creation, a status change (the final one) or the request on the wire.
        return entry.kind is Kind.POINTS and entry is not self._in_flight

    def _queued(self) -> bool:
        return bool(self._mem or self._overflow or self._journal_pending())

    def _journal_pending(self) -> int:
        return self._journal.pending if self._journal is not None else 0

    def _head(self) -> Entry | None:
        if self._mem:
            return self._mem[0]
        if self._journal is not None and self._journal.pending:
            try:
                entry = self._journal.peek()
            except OSError as exc:  # unreadable: what it holds is lost, memory goes on
                self.lost_points += self._journal.pending_points
                self._disk_error = self._disk_error or _os_error(exc)
                self._warn_once("unreadable", f"trainmon: cannot read {self._journal_path} ({exc})")
                self._journal.close(delete_if_empty=False)
                self._journal = None
                entry = None
            if entry is not None:
                return entry
        if self._overflow:
            return self._overflow[0]
        return None

    def _pop(self, entry: Entry) -> None:
        if self._mem and self._mem[0] is entry:
            self._mem.popleft()
            self._mem_bytes -= len(entry.body)
        elif self._overflow and self._overflow[0] is entry:
            self._overflow.popleft()
            self._overflow_bytes -= len(entry.body)
        elif self._journal is not None:
            self._journal.pop()

    def _deliver_one(self) -> bool:
        """Send the oldest request if allowed now; ``True`` if it was acknowledged."""
        with self._lock:
            if self._abandoned or self._halted is not None or self._clock() < self._next_attempt:
                return False
            entry = self._in_flight = self._head()
        if entry is None:
            return False
        try:
            answer: Response | None = self._transport("POST", entry.path, entry.body)
            failure = None
        except TransportError as exc:
            answer, failure = None, str(exc)
        with self._lock:
            self._in_flight = None
            if self._abandoned:
                return False
            now = self._clock()
            if answer is None or answer.status >= 500 or answer.status == 429:
                reason = failure or f"HTTP {answer.status if answer else '?'}"
                self._failures += 1
                wait = backoff(self._failures, self.config.backoff_max)
                if answer is not None and answer.retry_after is not None:
                    wait = max(wait, answer.retry_after)  # a busy server says when
                self._next_attempt = now + wait
                if entry.kind is Kind.HEARTBEAT:
                    self._pop(entry)  # a missed heartbeat is not worth a retry
                if answer is not None and answer.status in (429, 503):
                    self._warn_once(
                        "busy",
                        f"trainmon: {self._url} is busy ({reason}); points are kept and sent "
                        "when it has room",
                    )
                else:
                    self._warn_once(
                        "unreachable",
                        f"trainmon: cannot reach {self._url} ({reason}); points are kept and "
                        "retried",
                    )
                return False
            self._failures = 0
            self._next_attempt = 0.0
            self._last_contact = now
            if answer.status < 300:
                self._pop(entry)
                self.delivered_points += entry.points
                self.delivered_batches += 1
                self._read_reply(answer.body)
                return True
            self._refused(entry, answer)
            return False

    def _refused(self, entry: Entry, answer: Response) -> None:
        detail = _error_message(answer.body)
        if answer.status in (401, 403) or (answer.status == 404 and entry.kind is not Kind.CREATE):
            what = "rejected the token" if answer.status != 404 else f"has no job {self.job_id}"
            self._halted = f"HTTP {answer.status}"
            self._warn_once(
                "halted",
                f"trainmon: {self._url} {what} ({answer.status}: {detail}); points are kept in "
                f"{self._journal_path}; fix it, then run `trainmon sync`",
            )
            # Everything still in memory goes to disk now: nothing will be sent any more.
            # (If the disk refuses, _enqueue keeps it in memory and the end counts it lost.)
            pending = list(self._mem)
            self._mem.clear()
            self._mem_bytes = 0
            for queued in pending:
                if queued.kind is not Kind.HEARTBEAT:
                    self._enqueue(queued)
            return
        # Any other 4xx will not change on retry: set the request aside, keep going.
        self.rejected_batches += 1
        self._pop(entry)
        aside = self._journal_path.with_name(self._journal_path.name + ".rejected")
        try:
            make_private_dir(aside.parent)
            append_private(aside, encode_line(entry))
        except OSError as exc:
            aside = Path(f"nowhere: {_os_error(exc)}")
        self._warn_once(
            f"refused-{answer.status}",
            f"trainmon: {self._url} refused a batch ({answer.status}: {detail}); kept in {aside}",
        )

    def _read_reply(self, body: bytes) -> None:
        reply = parse_answer(body)
        if reply is not None and (reply.cancel_requested or reply.status == "cancelled"):
            self._on_cancel()

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._warn(message)

    @property
    def halted(self) -> str | None:
        return self._halted


def _error_message(body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
        return str(error.get("message") or error.get("code"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return body[:200].decode(errors="replace")
