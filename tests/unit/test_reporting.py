from __future__ import annotations

import math

import pytest

from trainmon.errors import Conflict
from trainmon.models import Job, JobStatus, Point
from trainmon.reporting import ProgressReport, apply_report, cancel_reason, transition

NOW = 1_000.0


def job(**fields: object) -> Job:
    values: dict[str, object] = {
        "id": "abcdef123456", "name": "j", "status": JobStatus.RUNNING,
        "created_at": 1.0, "updated_at": 1.0, "started_at": 2.0, **fields,
    }  # fmt: skip
    return Job(**values)  # type: ignore[arg-type]


def report(**fields: object) -> ProgressReport:
    return ProgressReport(**{"reporter": "r", "seq": 0, **fields})  # type: ignore[arg-type]


def test_points_set_step_loss_and_metrics_from_the_last_point() -> None:
    points = [
        Point(1, 10.0, {"loss": 2.0, "lr": 0.1}),
        Point(2, 11.0, {"acc": 0.5}),
        Point(3, 12.0, {"loss": math.nan}),
    ]
    updated = apply_report(job(total_steps=10), report(points=points), NOW)
    assert updated.current_step == 3
    assert updated.current_loss is not None and math.isnan(updated.current_loss)
    assert updated.metrics == {"lr": 0.1, "acc": 0.5}
    assert updated.last_seen_at == NOW and updated.sdk_attached
    assert updated.progress == pytest.approx(30.0)


def test_heartbeat_only_refreshes_last_seen() -> None:
    before = job(current_step=4, current_loss=1.0)
    after = apply_report(before, report(), NOW)
    assert (after.current_step, after.current_loss, after.last_seen_at) == (4, 1.0, NOW)


def test_parsed_output_is_ignored_once_an_sdk_reports() -> None:
    attached = job(sdk_attached=True, current_step=50, total_steps=100)
    from_output = report(current_step=10, total_steps=20, loss=9.0, source="output")
    after = apply_report(attached, from_output, NOW)
    assert (after.current_step, after.total_steps, after.current_loss) == (50, 100, None)
    assert after.last_seen_at == NOW and after.sdk_attached


def test_parsed_output_counts_without_an_sdk() -> None:
    after = apply_report(
        job(), report(current_step=10, total_steps=20, loss=0.5, source="output"), NOW
    )
    assert (after.current_step, after.total_steps, after.current_loss) == (10, 20, 0.5)
    assert not after.sdk_attached


def test_status_change_stamps_finish_and_keeps_error() -> None:
    after = apply_report(
        job(), report(status=JobStatus.FAILED, error="ValueError: x", exit_code=1), NOW
    )
    assert after.status is JobStatus.FAILED and after.finished_at == NOW
    assert (after.error, after.exit_code) == ("ValueError: x", 1)


def test_finished_job_keeps_its_status_but_takes_late_points() -> None:
    done = job(status=JobStatus.COMPLETED, finished_at=5.0)
    after = apply_report(done, report(status=JobStatus.RUNNING, points=[Point(9, 3.0, {})]), NOW)
    assert after.status is JobStatus.COMPLETED and after.current_step == 9


def test_illegal_change_on_active_job_conflicts() -> None:
    with pytest.raises(Conflict):
        apply_report(job(status=JobStatus.PENDING), report(status=JobStatus.COMPLETED), NOW)


def test_running_stamps_started_once() -> None:
    started = transition(job(status=JobStatus.PENDING, started_at=None), JobStatus.RUNNING, NOW)
    assert started.started_at == NOW and started.finished_at is None
    assert apply_report(started, report(status=JobStatus.RUNNING), NOW + 5).started_at == NOW


def test_completed_job_shows_full_progress() -> None:
    done = transition(job(current_step=99, total_steps=100), JobStatus.COMPLETED, NOW)
    assert done.progress == 100.0 and done.current_step == 99


# -- item 14: the runner's facts land on a finished job; who cancelled is named -------------


def supervisor_end(**fields: object) -> ProgressReport:
    return report(reporter="supervisor", source="output", **fields)


@pytest.mark.parametrize(
    ("before", "late", "expected"),
    [
        # The SDK failed it first: the supervisor's exit code and end reason still land.
        (
            {"status": JobStatus.FAILED, "error": "Traceback"},
            supervisor_end(status=JobStatus.FAILED, exit_code=1, end_reason="exit code 1"),
            (JobStatus.FAILED, 1, "exit code 1", "Traceback"),
        ),
        # The supervisor knows the process best: it replaces what an SDK said.
        (
            {"status": JobStatus.COMPLETED, "exit_code": 0, "end_reason": "sdk finished"},
            supervisor_end(status=JobStatus.FAILED, exit_code=3, end_reason="exit code 3"),
            (JobStatus.COMPLETED, 3, "exit code 3", None),
        ),
        # A later SDK report only fills in what is missing.
        (
            {"status": JobStatus.FAILED, "exit_code": 1, "end_reason": "exit code 1"},
            report(status=JobStatus.COMPLETED, exit_code=0, end_reason="sdk", error="late"),
            (JobStatus.FAILED, 1, "exit code 1", "late"),
        ),
        (
            {"status": JobStatus.FAILED},
            report(exit_code=2, end_reason="sdk says 2"),
            (JobStatus.FAILED, 2, "sdk says 2", None),
        ),
        # A signal: no exit code, the end reason names it.
        (
            {"status": JobStatus.FAILED, "error": "lost contact"},
            supervisor_end(status=JobStatus.FAILED, end_reason="SIGKILL"),
            (JobStatus.FAILED, None, "SIGKILL", "lost contact"),
        ),
        # The SDK cancelled it first; the supervisor says how, prefixed with who asked.
        (
            {"status": JobStatus.CANCELLED, "cancel_source": "api"},
            supervisor_end(status=JobStatus.CANCELLED, exit_code=0, end_reason="exit code 0"),
            (JobStatus.CANCELLED, 0, "cancelled via the API: exit code 0", None),
        ),
    ],
)
def test_late_process_facts_land_but_the_first_terminal_status_stays(
    before: dict[str, object],
    late: ProgressReport,
    expected: tuple[JobStatus, int | None, str | None, str | None],
) -> None:
    after = apply_report(job(**before), late, NOW)
    assert (after.status, after.exit_code, after.end_reason, after.error) == expected


@pytest.mark.parametrize(
    ("source", "how", "expected"),
    [
        ("api", "SIGTERM after cancel", "cancelled via the API: SIGTERM after cancel"),
        (
            "dashboard",
            "exit code 0 after SIGTERM",
            "cancelled from the dashboard: exit code 0 after SIGTERM",
        ),
        ("api", "before start", "cancelled via the API before start"),
        ("api", None, "cancelled via the API"),
        (None, "SIGTERM after cancel", "SIGTERM after cancel"),
        ("api", "cancelled via the API: x", "cancelled via the API: x"),
    ],
)
def test_cancel_reason_names_who_cancelled(
    source: str | None, how: str | None, expected: str
) -> None:
    assert cancel_reason(source, how) == expected


def test_cancelled_transition_names_the_source() -> None:
    cancelling = job(cancel_requested=True, cancel_source="dashboard")
    end = supervisor_end(status=JobStatus.CANCELLED, end_reason="SIGKILL: grace ran out")
    after = apply_report(cancelling, end, NOW)
    assert after.end_reason == "cancelled from the dashboard: SIGKILL: grace ran out"
