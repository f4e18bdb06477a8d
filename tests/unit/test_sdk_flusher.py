"""The flusher against an in-memory server and a fake clock: one tick at a time."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest

from sdk_helpers import FakeClock, FakeServer
from trainmon.sdk.flusher import FlushConfig, Flusher
from trainmon.sdk.journal import leftover_journals, sync_pending
from trainmon.sdk.values import Point

JOB = "abcdef012345"


class Harness:
    def __init__(self, tmp_path: Path, token: str = "secret", **kwargs: Any) -> None:
        self.server = FakeServer()
        self.clock = FakeClock()
        self.buffer: list[Point] = []
        self.warnings: list[str] = []
        self.cancels = 0
        self.journal_dir = tmp_path / "journal"
        self.flusher = Flusher(
            self.buffer,
            self.server.transport(token),
            job_id=JOB,
            reporter="sdk-test",
            url="http://fake",
            journal_path=self.journal_dir / f"{JOB}-sdk-test.jsonl",
            create_body={"id": JOB, "name": "t", "config": {}, "tags": []},
            total_steps=100,
            on_cancel=self._cancelled,
            clock=self.clock,
            sleep=self.clock.advance,
            warn=self.warnings.append,
            config=FlushConfig(**kwargs),
        )

    def _cancelled(self) -> None:
        self.cancels += 1

    def log(self, start: int, stop: int) -> None:
        for step in range(start, stop):
            self.buffer.append((step, 1.0 + step, float(step), {"lr": 0.1}))

    def run_for(self, seconds: float, step: float = 0.025) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.advance(step)
            self.flusher.tick()

    def close(self, status: str = "completed", timeout: float = 5.0) -> int:
        return self.flusher.close(status, None, timeout)


def test_creates_marks_running_then_sends_every_point_once(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.flusher.tick()
    paths = [p for p, _ in h.server.requests]
    assert paths[0] == "/api/training/jobs"
    assert h.server.requests[1][1]["status"] == "running"
    assert h.server.requests[1][1]["totalSteps"] == 100
    h.log(0, 50)
    h.run_for(0.6)
    h.log(50, 80)
    assert h.close() == 0
    assert h.server.steps(JOB) == list(range(80))
    assert h.server.jobs[JOB]["status"] == "completed"
    seqs = [body["seq"] for path, body in h.server.requests if path.endswith("/progress")]
    assert seqs == sorted(set(seqs))
    assert h.warnings == []


def test_points_wait_for_the_flush_interval_or_a_full_buffer(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_batch_points=100)
    h.flusher.tick()
    h.log(0, 10)
    h.clock.advance(0.1)
    h.flusher.tick()
    assert h.server.steps(JOB) == []  # not due yet
    h.log(10, 250)  # over a full batch: sent now, in batches of at most 100
    h.clock.advance(0.01)
    h.flusher.tick()
    assert h.server.steps(JOB) == list(range(250))
    sizes = [len(b["points"]) for p, b in h.server.requests if p.endswith("/progress")]
    assert max(sizes) <= 100
    h.close()


def test_unnumbered_points_continue_from_the_last_step(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.buffer.extend([(None, 1.0, 0.5, None), (None, 2.0, 0.4, None), (10, 3.0, 0.3, None)])
    h.buffer.append((None, 4.0, 0.2, None))
    h.close()
    assert h.server.steps(JOB) == [0, 1, 10, 11]


def test_special_floats_travel_as_strings(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.buffer.append((1, 1.0, math.nan, {"g": math.inf, "h": -math.inf}))
    h.close()
    (point,) = h.server.points[JOB]
    assert point["loss"] == "NaN"
    assert point["metrics"] == {"g": "Infinity", "h": "-Infinity"}


def test_server_down_then_back_loses_nothing_and_backs_off(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.server.down = True
    h.log(0, 1000)
    h.run_for(5.0)
    attempts_down = len(h.server.requests)
    assert attempts_down == 0
    assert sum("cannot reach" in w for w in h.warnings) == 1  # reported once
    h.server.down = False
    h.log(1000, 1500)
    h.run_for(5.0)
    assert h.server.steps(JOB) == list(range(1500))
    h.close()


def test_backoff_spaces_out_attempts(tmp_path: Path) -> None:
    h = Harness(tmp_path, backoff_max=2.0)
    calls: list[float] = []
    original = h.server.handle

    def counting(method: str, path: str, body: bytes | None, token: str | None) -> Any:
        calls.append(h.clock.now)
        return original(method, path, body, token)

    h.server.handle = counting  # type: ignore[method-assign]
    h.server.down = True
    h.run_for(20.0)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps and max(gaps) <= 2.0 + 0.05
    assert len(calls) < 20 / 0.5  # far fewer than one per tick
    h.close()


def test_lost_answer_is_resent_with_the_same_seq_and_applied_once(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.flusher.tick()
    h.log(0, 100)
    h.server.lose_answer_once = True
    h.run_for(3.0)
    h.close()
    assert h.server.steps(JOB) == list(range(100))
    progress = [b["seq"] for p, b in h.server.requests if p.endswith("/progress")]
    assert len(progress) > len(set(progress))  # something was resent ...
    assert len(h.server.seen) == len(set(progress))  # ... and applied once


def test_memory_is_bounded_and_spills_to_a_journal_in_order(tmp_path: Path) -> None:
    h = Harness(tmp_path, memory_limit=20_000, max_batch_points=100)
    h.server.down = True
    for chunk in range(50):
        h.log(chunk * 100, chunk * 100 + 100)
        h.run_for(0.6)
    assert h.flusher._mem_bytes <= 20_000
    assert leftover_journals(h.journal_dir)
    h.server.down = False
    h.run_for(30.0)
    assert h.server.steps(JOB) == list(range(5000))
    assert h.close() == 0
    assert leftover_journals(h.journal_dir) == []  # drained journals are removed


def test_close_while_down_keeps_everything_for_sync(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.server.down = True
    h.log(0, 3000)
    left = h.close("failed", timeout=0.0)
    assert left == 3000
    (journal,) = leftover_journals(h.journal_dir)
    h.server.down = False
    summary = sync_pending("http://fake", "secret", h.journal_dir, transport=h.server.transport())
    assert summary.ok and summary.points_sent == 3000 and summary.journals_done == 1
    assert h.server.steps(JOB) == list(range(3000))
    assert h.server.jobs[JOB]["status"] == "failed"
    assert not journal.exists()
    again = sync_pending("http://fake", "secret", h.journal_dir, transport=h.server.transport())
    assert again.journals == 0


def test_sync_resumes_after_an_interruption_without_duplicates(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_batch_points=100)
    h.server.down = True
    h.log(0, 1000)
    h.close(timeout=0.0)
    h.server.down = False
    calls = 0
    good = h.server.transport()

    def flaky(method: str, path: str, body: bytes | None = None) -> Any:
        nonlocal calls
        calls += 1
        if calls == 5:
            h.server.down = True
        return good(method, path, body)

    first = sync_pending("u", "secret", h.journal_dir, transport=flaky)
    assert first.error and first.pending_batches > 0
    h.server.down = False
    second = sync_pending("u", "secret", h.journal_dir, transport=good)
    assert second.ok
    assert h.server.steps(JOB) == list(range(1000))


def test_wrong_token_stops_retrying_and_journals(tmp_path: Path) -> None:
    h = Harness(tmp_path, token="wrong")
    h.log(0, 500)
    h.run_for(5.0)
    requests = len(h.server.requests)
    h.log(500, 600)
    h.run_for(30.0)
    assert len(h.server.requests) == requests == 1  # refused once, never retried
    assert sum("rejected the token" in w for w in h.warnings) == 1
    assert h.close(timeout=1.0) == 600
    summary = sync_pending("u", "secret", h.journal_dir, transport=h.server.transport())
    assert summary.ok
    assert h.server.steps(JOB) == list(range(600))


def test_other_4xx_sets_the_batch_aside_and_goes_on(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.flusher.tick()
    h.log(0, 10)
    h.server.status_override = 422
    h.run_for(0.6)
    h.server.status_override = None
    h.log(10, 20)
    h.run_for(0.6)
    h.close()
    assert h.server.steps(JOB) == list(range(10, 20))
    assert h.flusher.rejected_batches == 1
    assert sum("refused a batch" in w for w in h.warnings) == 1
    aside = list(h.journal_dir.glob("*.rejected"))
    assert len(aside) == 1 and aside[0].read_bytes().count(b"\n") == 1


def test_heartbeat_when_quiet_only(tmp_path: Path) -> None:
    h = Harness(tmp_path, heartbeat_interval=2.0)
    h.flusher.tick()
    before = len(h.server.requests)
    h.run_for(1.9)
    assert len(h.server.requests) == before
    h.run_for(0.2)
    assert len(h.server.requests) == before + 1
    assert h.server.requests[-1][1]["points"] == []
    # While points flow every flush, no extra heartbeats are needed.
    for i in range(20):
        h.log(i, i + 1)
        h.run_for(0.5)
    assert all(b["points"] for _, b in h.server.requests[before + 1 :])
    h.close()


def test_failed_heartbeat_is_dropped_not_journaled(tmp_path: Path) -> None:
    h = Harness(tmp_path, heartbeat_interval=1.0)
    h.flusher.tick()
    h.server.down = True
    h.run_for(10.0)
    assert h.close(timeout=0.0) == 0
    assert leftover_journals(h.journal_dir) != []  # the final status waits on disk
    h.server.down = False
    sync_pending("u", "secret", h.journal_dir, transport=h.server.transport())
    assert h.server.jobs[JOB]["status"] == "completed"


@pytest.mark.parametrize("busy", [True, False])
def test_cancel_is_learned_within_two_flush_intervals(tmp_path: Path, busy: bool) -> None:
    h = Harness(tmp_path, flush_interval=0.5, heartbeat_interval=0.5)
    h.run_for(1.0)
    h.server.cancel = True
    start = h.clock.now
    while h.cancels == 0 and h.clock.now - start < 5:
        if busy:
            h.log(0, 1)
        h.run_for(0.025)
    assert h.cancels == 1 or h.cancels > 0
    assert h.clock.now - start <= 2 * 0.5
    h.close("cancelled")
    assert h.server.jobs[JOB]["status"] == "cancelled"


def test_back_pressure_when_the_loop_outruns_the_flusher(tmp_path: Path) -> None:
    h = Harness(tmp_path, high_water=1000, max_batch_points=100)
    signals: list[bool] = []
    h.flusher._on_pressure = signals.append
    h.log(0, 999)
    h.clock.advance(0.01)
    h.flusher.tick()
    assert True not in signals  # under the mark: no pressure
    signals.clear()
    h.log(999, 3000)
    h.clock.advance(0.01)
    h.flusher.tick()
    assert signals[0] is True and signals[-1] is False  # on, then released once drained
    assert h.buffer == []
    h.close()
    assert h.server.steps(JOB) == list(range(3000))
