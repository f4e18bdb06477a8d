"""The wire protocol against the server: bodies built by ``trainmon.wire`` validate with the
server's schema and mean what the client meant, and the answer parser reads the real route."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

from trainmon import wire
from trainmon.models import JobStatus, Point
from trainmon.reporting import LOSS, ProgressReport
from trainmon.runner.outcome import Outcome
from trainmon.sdk.journal import decode_line, encode_line
from trainmon.sdk.values import Point as LoggedPoint
from trainmon.server.schemas import ProgressIn

NOW = 1_800_000_000.0
NAN, INF = math.nan, math.inf

POINTS: list[LoggedPoint] = [
    (0, NOW + 0.5, 2.5, None),
    (1, NOW + 1.0, None, None),
    (2, NOW + 1.5, 1.25, {"lr": 0.1, "acc": 0.5}),
    (3, NOW + 2.0, NAN, None),
    (4, NOW + 2.5, INF, {"grad": -INF}),
    (5, NOW + 3.0, -INF, {"lr": NAN}),
]


def expected_points(points: list[LoggedPoint]) -> list[Point]:
    out = []
    for step, t, loss, metrics in points:
        values = dict(metrics or {})
        if loss is not None:
            values[LOSS] = loss
        out.append(Point(step, t, values))
    return out


# (reporter, source, points, fields, what the server should read)
CASES: dict[str, tuple[str, str, list[LoggedPoint], dict[str, object], dict[str, Any]]] = {
    "first batch": (
        "sdk-a",
        "sdk",
        [],
        {"status": "running", "totalSteps": 100},
        {"status": JobStatus.RUNNING, "total_steps": 100},
    ),
    "points with loss, metrics, NaN and infinities": ("sdk-a", "sdk", POINTS, {}, {}),
    "heartbeat": ("sdk-a", "sdk", [], {}, {}),
    "sdk end with exit code and reason": (
        "sdk-a",
        "sdk",
        POINTS[:2],
        {
            **wire.end_fields("failed", error="boom"),
            **{"exitCode": 3, "endReason": "exit code 3"},
        },
        {
            "status": JobStatus.FAILED,
            "error": "boom",
            "exit_code": 3,
            "end_reason": "exit code 3",
        },
    ),
    "runner end with nulls": (
        "supervisor",
        "output",
        [],
        Outcome("failed", None, "killed by SIGKILL", "SIGKILL").to_json(),
        {"status": JobStatus.FAILED, "error": "killed by SIGKILL", "end_reason": "SIGKILL"},
    ),
    "parsed output progress": (
        "supervisor",
        "output",
        [],
        wire.progress_fields(current_step=40, total_steps=200, loss=0.75),
        {"current_step": 40, "total_steps": 200, "loss": 0.75},
    ),
    "parsed output progress, diverged": (
        "supervisor",
        "output",
        [],
        wire.progress_fields(current_step=41, loss=NAN),
        {"current_step": 41, "loss": NAN},
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_built_batch_is_what_the_server_reads(case: str) -> None:
    reporter, source, points, fields, read = CASES[case]
    body = wire.encode_batch(reporter=reporter, seq=7, source=source, points=points, fields=fields)
    report = ProgressIn.model_validate_json(body).to_report(NOW)
    expected = ProgressReport(
        reporter=reporter, seq=7, points=expected_points(points), source=source, **read
    )
    # repr compares NaN equal to NaN and every float exactly (repr round-trips).
    assert repr(report) == repr(expected)


@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_special_floats_travel_as_the_apis_strings(value: float) -> None:
    body = wire.encode_batch(
        reporter="r", seq=1, source="sdk", points=[(0, NOW, value, None)], fields={"loss": value}
    )
    text = {NAN: '"NaN"', INF: '"Infinity"', -INF: '"-Infinity"'}
    token = next(t for v, t in text.items() if repr(v) == repr(value))
    assert body.count(token.encode()) == 2
    assert b":NaN" not in body and b":Infinity" not in body and b":-Infinity" not in body


@pytest.mark.parametrize(
    ("path", "fields", "points", "kind"),
    [
        (wire.CREATE_PATH, {"name": "x"}, 0, wire.Kind.CREATE),
        ("/api/training/jobs/j/progress", {"status": "running"}, 0, wire.Kind.STATUS),
        ("/api/training/jobs/j/progress", {"status": "completed"}, 5, wire.Kind.STATUS),
        ("/api/training/jobs/j/progress", {"totalSteps": 5}, 5, wire.Kind.POINTS),
        ("/api/training/jobs/j/progress", {}, 0, wire.Kind.HEARTBEAT),
        ("/api/training/jobs/j/progress", {"exitCode": 0}, 0, wire.Kind.HEARTBEAT),
    ],
)
def test_kind_of(path: str, fields: dict[str, object], points: int, kind: wire.Kind) -> None:
    assert wire.kind_of(path, fields, points) is kind


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        # Journal lines as older releases wrote them: the kind comes from the parsed body.
        (b'/api/training/jobs {"id":"j","name":"t","config":{},"tags":[]}\n', wire.Kind.CREATE),
        (
            b'/api/training/jobs/j/progress {"reporter":"sdk-1","seq":1,"source":"sdk",'
            b'"status":"running","points":[]}\n',
            wire.Kind.STATUS,
        ),
        (
            b'/api/training/jobs/j/progress {"reporter":"sdk-1","seq":2,"source":"sdk",'
            b'"points":[{"step":0,"time":1.0,"loss":0.5,"metrics":{}}]}\n',
            wire.Kind.POINTS,
        ),
    ],
)
def test_journal_lines_get_their_kind_back(line: bytes, kind: wire.Kind) -> None:
    entry = decode_line(line)
    assert entry is not None and entry.kind is kind
    assert encode_line(entry) == line


def test_backoff_keeps_each_clients_timings() -> None:
    # The SDK: 0.2 s doubling up to 3 s; the runner's final report: the same, up to 5 s.
    assert [wire.backoff(n, 3.0) for n in range(1, 7)] == [0.2, 0.4, 0.8, 1.6, 3.0, 3.0]
    assert [wire.backoff(n, 5.0) for n in range(1, 7)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0]
    assert wire.backoff(10_000, 5.0) == 5.0


def test_sequence_numbers_start_at_one_and_never_repeat() -> None:
    seq = wire.SeqCounter()
    assert [seq.next() for _ in range(3)] == [1, 2, 3]


@pytest.mark.parametrize("body", [b"", b"<html>bad gateway</html>", b"[1]", b'"x"'])
def test_an_answer_that_is_not_an_object_is_none(body: bytes) -> None:
    assert wire.parse_answer(body) is None


def test_the_answer_parser_reads_the_route(client: TestClient) -> None:
    created = client.post("/api/training/jobs", json={"name": "wire"})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    path = wire.progress_path(job_id)
    seq = wire.SeqCounter()

    def send(fields: dict[str, object], points: list[LoggedPoint], n: int) -> wire.Answer:
        body = wire.encode_batch(
            reporter="sdk-w", seq=n, source="sdk", points=points, fields=fields
        )
        answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 200, answer.text
        parsed = wire.parse_answer(answer.content)
        assert parsed is not None
        return parsed

    first = seq.next()
    assert send({"status": "running"}, POINTS, first) == wire.Answer(True, False, "running")
    # A resend of the same sequence number is acknowledged and not applied again.
    assert send({"status": "running"}, POINTS, first) == wire.Answer(False, False, "running")
    assert client.post(f"/api/training/jobs/{job_id}/cancel").status_code == 200
    heartbeat = send({}, [], seq.next())
    assert heartbeat.cancel_requested and not heartbeat.ended
    end = Outcome("cancelled", None, None, "SIGTERM after cancel").to_json()
    final = send(end, [], seq.next())
    assert final.status == "cancelled" and final.ended
