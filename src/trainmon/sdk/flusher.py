"""The background half of a run: batches logged points and delivers them, never losing one.

Order of delivery is strict FIFO: the oldest requests wait in memory, and once memory holds
``memory_limit`` bytes, newer ones (and, while the journal is not empty, every newer one)
are appended to the on-disk journal, which is drained before memory is used again. A request
leaves the queue only when the server acknowledged it, so a lost answer means a resend of the
same sequence number, which the server applies once.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainmon.sdk.journal import Entry, Journal
from trainmon.sdk.transport import Response, Transport, TransportError
from trainmon.sdk.values import Point, dumps, encode_points

Clock = Callable[[], float]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
        create_body: dict[str, Any] | None = None,
        total_steps: int | None = None,
        on_cancel: Callable[[], None] = lambda: None,
        on_pressure: Callable[[bool], None] = lambda on: None,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        warn: Callable[[str], None] = _stderr,
        flush_interval: float = 0.5,
        heartbeat_interval: float = 10.0,
        max_batch_points: int = 10_000,
        memory_limit: int = 4 << 20,
        high_water: int = 100_000,
        backoff_max: float = 3.0,
    ) -> None:
        self._buffer = buffer
        self._transport = transport
        self.job_id = job_id
        self.reporter = reporter
        self._url = url
        self._journal_path = journal_path
        self._on_cancel = on_cancel
        self._on_pressure = on_pressure
        self._high_water = high_water
        self._low_water = high_water // 4
        self._clock = clock
        self._sleep = sleep  # used only when closing without the thread (tests)
        self._warn = warn
        self.flush_interval = flush_interval
        self.heartbeat_interval = heartbeat_interval
        self._max_batch = max_batch_points
        self._memory_limit = memory_limit
        self._backoff_max = backoff_max
        self._progress_path = f"/api/training/jobs/{job_id}/progress"

        self._lock = threading.Lock()
        self._mem: deque[Entry] = deque()
        self._mem_bytes = 0
        self._journal: Journal | None = None
        self._seq = 0
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
        self._closing: tuple[str, str | None, float] | None = None
        self._thread: threading.Thread | None = None

        if create_body is not None:
            self._enqueue(Entry("/api/training/jobs", dumps(create_body), 0))
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
            self.tick()
            self._wake.wait(self.POLL)
            self._wake.clear()
        status, error, deadline = self._closing
        self.drain(status, error, deadline, sleep=self._nap)

    def _nap(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def close(self, status: str, error: str | None, timeout: float) -> int:
        """Finish from the caller's thread; returns how many points were left in the journal."""
        deadline = self._clock() + timeout
        self._closing = (status, error, deadline)
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout + 1.0)
            if self._thread.is_alive():
                # Stuck in a request to a hung server: take over and keep what is left.
                self._warn_once("hung", f"trainmon: {self._url} did not answer in time")
        else:
            self.drain(status, error, deadline, sleep=self._sleep)
        return self.abandon()

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
            if backlog >= self._max_batch or now - self._last_pack >= self.flush_interval:
                self._pack(None)
            quiet = not self._mem and self._journal_pending() == 0
            heartbeat = (
                quiet
                and self._halted is None
                and now >= self._next_attempt
                and now - self._last_contact >= self.heartbeat_interval
            )
            if heartbeat:
                # An empty batch says "alive" and fetches cancel requests; never journaled.
                self._mem.append(self._batch([], {}))
        start = now
        while self._clock() - start < budget and self._deliver_one():
            pass

    def drain(
        self, status: str, error: str | None, deadline: float, *, sleep: Callable[[float], Any]
    ) -> None:
        """The final batch (all remaining points, then the status), delivered until ``deadline``."""
        with self._lock:
            extra: dict[str, Any] = {"status": status}
            if error is not None:
                extra["error"] = error
            self._pack(extra)
        while True:  # at least one attempt, however short the deadline
            if self._deliver_one():
                continue
            with self._lock:
                if self._halted is not None or not (self._mem or self._journal_pending()):
                    return
            if self._clock() >= deadline:
                return
            sleep(max(0.0, min(self._next_attempt, deadline) - self._clock()))

    def abandon(self) -> int:
        """Stop delivering; what memory still holds goes to the journal. Points left on disk."""
        with self._lock:
            self._abandoned = True
            if self._halted is None and not self._mem and self._journal is None:
                return 0
            undelivered = [e for e in self._mem if not _is_heartbeat(e)]
            self._mem.clear()
            if undelivered:
                journal = self._open_journal()
                for entry in undelivered:
                    journal.append(entry)
            if self._journal is None:
                return 0
            left = self._journal.pending_points if self._journal.pending else 0
            self._journal.close()
            return left

    # -- internals -----------------------------------------------------------------------

    def _batch(self, points: list[Point], extra: dict[str, Any]) -> Entry:
        self._seq += 1
        head = {"reporter": self.reporter, "seq": self._seq, "source": "sdk", **extra}
        # The points are spliced in as text (see encode_points); the rest is ordinary JSON.
        body = dumps(head)[:-1] + b',"points":' + encode_points(points).encode() + b"}"
        return Entry(self._progress_path, body, len(points))

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
        spilling = self._journal_pending() > 0 or self._halted is not None
        if spilling or self._mem_bytes + len(entry.body) > self._memory_limit:
            if self._failures and not spilling:
                # A busy server just means a backlog on disk; say something only when away.
                self._warn_once(
                    "spill",
                    f"trainmon: queueing points in {self._journal_path} until the server is back",
                )
            self._open_journal().append(entry)
            return
        self._mem.append(entry)
        self._mem_bytes += len(entry.body)

    def _open_journal(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(self._journal_path)
        return self._journal

    def _journal_pending(self) -> int:
        return self._journal.pending if self._journal is not None else 0

    def _head(self) -> Entry | None:
        if self._mem:
            return self._mem[0]
        if self._journal is not None and self._journal.pending:
            self._journal.flush()
            return self._journal.peek()
        return None

    def _pop(self, entry: Entry) -> None:
        if self._mem and self._mem[0] is entry:
            self._mem.popleft()
            self._mem_bytes -= len(entry.body)
        elif self._journal is not None:
            self._journal.pop()

    def _deliver_one(self) -> bool:
        """Send the oldest request if allowed now; ``True`` if it was acknowledged."""
        with self._lock:
            if self._abandoned or self._halted is not None or self._clock() < self._next_attempt:
                return False
            entry = self._head()
        if entry is None:
            return False
        try:
            answer: Response | None = self._transport("POST", entry.path, entry.body)
            failure = None
        except TransportError as exc:
            answer, failure = None, str(exc)
        with self._lock:
            if self._abandoned:
                return False
            now = self._clock()
            if answer is None or answer.status >= 500 or answer.status == 429:
                reason = failure or f"HTTP {answer.status if answer else '?'}"
                self._failures += 1
                delay = min(self._backoff_max, 0.1 * 2 ** min(self._failures, 10))
                self._next_attempt = now + delay
                if _is_heartbeat(entry):
                    self._pop(entry)  # a missed heartbeat is not worth a retry
                self._warn_once(
                    "unreachable",
                    f"trainmon: cannot reach {self._url} ({reason}); points are kept and retried",
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
        if answer.status in (401, 403) or (
            answer.status == 404 and entry.path != "/api/training/jobs"
        ):
            what = "rejected the token" if answer.status != 404 else f"has no job {self.job_id}"
            self._halted = f"HTTP {answer.status}"
            self._warn_once(
                "halted",
                f"trainmon: {self._url} {what} ({answer.status}: {detail}); points are kept in "
                f"{self._journal_path}; fix it, then run `trainmon sync`",
            )
            # Everything still in memory goes to disk now: nothing will be sent any more.
            pending = list(self._mem)
            self._mem.clear()
            self._mem_bytes = 0
            journal = self._open_journal()
            for queued in pending:
                if not _is_heartbeat(queued):
                    journal.append(queued)
            journal.flush()
            return
        # Any other 4xx will not change on retry: set the request aside, keep going.
        self.rejected_batches += 1
        self._pop(entry)
        aside = self._journal_path.with_name(self._journal_path.name + ".rejected")
        aside.parent.mkdir(parents=True, exist_ok=True)
        with open(aside, "ab") as handle:
            handle.write(entry.path.encode() + b" " + entry.body + b"\n")
        self._warn_once(
            f"refused-{answer.status}",
            f"trainmon: {self._url} refused a batch ({answer.status}: {detail}); kept in {aside}",
        )

    def _read_reply(self, body: bytes) -> None:
        try:
            reply = json.loads(body)
        except ValueError:
            return
        if isinstance(reply, dict) and (
            reply.get("cancelRequested") is True or reply.get("status") == "cancelled"
        ):
            self._on_cancel()

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._warn(message)

    @property
    def halted(self) -> str | None:
        return self._halted


def _is_heartbeat(entry: Entry) -> bool:
    return entry.points == 0 and b'"status"' not in entry.body and b'"points":[]' in entry.body


def _error_message(body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
        return str(error.get("message") or error.get("code"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return body[:200].decode(errors="replace")
