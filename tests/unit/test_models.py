from __future__ import annotations

import itertools
import math

import pytest

from trainmon.errors import Conflict
from trainmon.models import (
    ACTIVE,
    TERMINAL,
    JobStatus,
    can_transition,
    check_transition,
    derive_progress,
    float_to_json,
    is_job_id,
    is_stale,
)

S = JobStatus
LEGAL = {
    (S.PENDING, S.QUEUED), (S.PENDING, S.RUNNING), (S.PENDING, S.CANCELLED), (S.PENDING, S.FAILED),
    (S.QUEUED, S.RUNNING), (S.QUEUED, S.CANCELLED), (S.QUEUED, S.FAILED),
    (S.RUNNING, S.COMPLETED), (S.RUNNING, S.FAILED), (S.RUNNING, S.CANCELLED),
}  # fmt: skip
ALL_PAIRS = list(itertools.product(JobStatus, JobStatus))


@pytest.mark.parametrize(("current", "target"), sorted(LEGAL))
def test_legal_transitions_pass(current: JobStatus, target: JobStatus) -> None:
    assert can_transition(current, target)
    check_transition(current, target)


@pytest.mark.parametrize(("current", "target"), [p for p in ALL_PAIRS if p not in LEGAL])
def test_illegal_transitions_raise_conflict(current: JobStatus, target: JobStatus) -> None:
    assert not can_transition(current, target)
    with pytest.raises(Conflict) as raised:
        check_transition(current, target)
    assert raised.value.status == 409
    assert current.value in raised.value.message


def test_terminal_states_are_final() -> None:
    for status in TERMINAL:
        assert status.is_terminal and not status.is_active
        assert not any(can_transition(status, target) for target in JobStatus)
    assert {s for s in JobStatus if s.is_active} == ACTIVE == {S.PENDING, S.QUEUED, S.RUNNING}


@pytest.mark.parametrize(
    ("step", "total", "expected"),
    [(370, 1000, 37.0), (0, 10, 0.0), (10, 10, 100.0), (15, 10, 100.0), (-1, 10, 0.0),
     (None, 10, None), (5, None, None), (5, 0, None), (5, -3, None)],
)  # fmt: skip
def test_derive_progress(step: int | None, total: int | None, expected: float | None) -> None:
    assert derive_progress(step, total) == expected


@pytest.mark.parametrize(
    ("status", "last_seen", "now", "expected"),
    [(S.RUNNING, 100.0, 120.0, False), (S.RUNNING, 100.0, 120.5, True),
     (S.RUNNING, None, 1e9, False), (S.PENDING, 0.0, 1e9, False), (S.FAILED, 0.0, 1e9, False)],
)  # fmt: skip
def test_is_stale_after_two_missed_heartbeats(
    status: JobStatus, last_seen: float | None, now: float, expected: bool
) -> None:
    assert is_stale(status, last_seen, now, heartbeat_interval=10.0) is expected


@pytest.mark.parametrize(
    ("value", "text"),
    [(math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity"), (1.5, 1.5), (None, None)],
)
def test_special_floats_travel_as_strings(value: float | None, text: object) -> None:
    assert float_to_json(value) == text
    if isinstance(text, str):
        back = float(text)  # what the API's validation does with them
        assert math.isnan(back) if math.isnan(value or 0.0) else back == value


@pytest.mark.parametrize(
    ("value", "valid"),
    [("abcdef123456", True), ("my-run_01", True), ("short", False), ("-leading", False),
     ("x" * 65, False), ("abc\x00defgh", False), ("abcdef/12345", False)],
)  # fmt: skip
def test_job_ids(value: str, valid: bool) -> None:
    assert is_job_id(value) is valid
