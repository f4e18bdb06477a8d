"""The progress wire protocol: what the SDK and the runner send and read back. Stdlib only.

Both clients report to ``POST /api/training/jobs/{id}/progress`` with a batch: a reporter
name, a sequence number (the server applies each ``(reporter, seq)`` once, so a resend after a
lost answer is harmless), points, and optional progress and end fields. Everything about
that exchange lives here, so the SDK's flusher and the supervisor's reporter cannot drift
apart, and ``tests/unit/test_wire.py`` checks these bodies against the server's schema.

NaN and the infinities travel as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``
(``values.dumps``), never as JSON's non-standard bare literals.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from trainmon.sdk.values import Point, dumps, encode_points

CREATE_PATH = "/api/training/jobs"
TERMINAL = ("completed", "failed", "cancelled")
BACKOFF_BASE = 0.1  # the first retry waits twice this


def progress_path(job_id: str) -> str:
    return f"{CREATE_PATH}/{job_id}/progress"


class Kind(str, Enum):
    """What a queued request is, decided when it is built, so nobody sniffs bytes later."""

    CREATE = "create"  # the job's creation: never dropped
    STATUS = "status"  # carries a status change (the first and the final batch): never dropped
    POINTS = "points"  # points and nothing that must survive: the oldest go first under pressure
    HEARTBEAT = "heartbeat"  # "alive" and a cancel check: never journaled, never retried


def kind_of(path: str, fields: Mapping[str, object], points: int) -> Kind:
    """The kind of a request from its path and body fields (a built batch's or a parsed one's)."""
    if path == CREATE_PATH:
        return Kind.CREATE
    if "status" in fields:
        return Kind.STATUS
    return Kind.POINTS if points else Kind.HEARTBEAT


class SeqCounter:
    """Sequence numbers of one reporter, from 1; safe to share between threads."""

    def __init__(self) -> None:
        # count.__next__ is a single C call: atomic under the GIL, no lock needed.
        self._next = itertools.count(1).__next__

    def next(self) -> int:
        return self._next()


def progress_fields(
    *, current_step: int | None = None, total_steps: int | None = None, loss: float | None = None
) -> dict[str, object]:
    """Parsed progress (from a tqdm line, say): only the parts that are known."""
    fields: dict[str, object] = {}
    if current_step is not None:
        fields["currentStep"] = current_step
    if total_steps is not None:
        fields["totalSteps"] = total_steps
    if loss is not None:
        fields["loss"] = loss
    return fields


def end_fields(
    status: str | None,
    *,
    error: str | None = None,
    exit_code: int | None = None,
    end_reason: str | None = None,
    with_nulls: bool = False,
) -> dict[str, object]:
    """How a job ended; ``status`` None leaves the job's end to someone who knows it. A field
    left out and a field sent as null mean the same to the server; ``with_nulls`` names every
    one anyway (the runner's final report always has, and its readers look for the keys)."""
    fields: dict[str, object] = {} if status is None else {"status": status}
    given = {"error": error, "exitCode": exit_code, "endReason": end_reason}
    fields.update(given if with_nulls else {k: v for k, v in given.items() if v is not None})
    return fields


def encode_batch(
    *,
    reporter: str,
    seq: int,
    source: str,
    points: Sequence[Point] = (),
    fields: Mapping[str, object] | None = None,
) -> bytes:
    """One batch's body. Every point's step must already be numbered."""
    head = {"reporter": reporter, "seq": seq, "source": source, **(fields or {})}
    # The points are spliced in as text (see encode_points); the rest is ordinary JSON.
    return dumps(head)[:-1] + b',"points":' + encode_points(points).encode() + b"}"


def backoff(failures: int, cap: float) -> float:
    """Seconds to wait after ``failures`` consecutive failed attempts: 0.2, 0.4, 0.8... ``cap``."""
    return min(cap, BACKOFF_BASE * float(1 << min(failures, 10)))


@dataclass(frozen=True, slots=True)
class Answer:
    """What the server says to an accepted batch."""

    applied: bool  # False: this (reporter, seq) had been applied already (a resend)
    cancel_requested: bool
    status: str | None  # the job's status after the batch

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL


def parse_answer(body: bytes) -> Answer | None:
    """The answer to a batch; ``None`` if it is not a JSON object (a proxy's error page)."""
    try:
        reply = json.loads(body)
    except ValueError:
        return None
    if not isinstance(reply, dict):
        return None
    status = reply.get("status")
    return Answer(
        applied=reply.get("applied") is True,
        cancel_requested=reply.get("cancelRequested") is True,
        status=status if isinstance(status, str) else None,
    )
