"""Named bad inputs: each is a 4xx in the one error shape, and no row changes.

Every case runs on SQLite and PostgreSQL (the ``client`` fixture), since the two backends
refuse different things (PostgreSQL text cannot hold NUL, for one)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

JOBS = "/api/training/jobs"
JSON = {"content-type": "application/json"}
MAX_BODY = 8 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str  # "{job}" is replaced by a seeded job's id
    status: int | tuple[int, ...]
    json: Any = None
    content: bytes | None = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def create(label: str, status: int | tuple[int, ...] = 422, /, **body: Any) -> Case:
    return Case(f"create: {label}", "POST", JOBS, status, json=body)


def create_raw(name: str, content: bytes, status: int | tuple[int, ...] = 422) -> Case:
    return Case(f"create: {name}", "POST", JOBS, status, content=content, headers=JSON)


def progress(label: str, status: int | tuple[int, ...] = 422, /, **body: Any) -> Case:
    return Case(f"progress: {label}", "POST", f"{JOBS}/{{job}}/progress", status, json=body)


def progress_raw(name: str, content: bytes, status: int | tuple[int, ...] = 422) -> Case:
    path = f"{JOBS}/{{job}}/progress"
    return Case(f"progress: {name}", "POST", path, status, content=content, headers=JSON)


def listing(label: str, status: int | tuple[int, ...], /, **params: Any) -> Case:
    return Case(f"list: {label}", "GET", JOBS, status, params=params)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BIG = 2**63
DEEP = b'{"name": "deep", "config": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"

CASES = [
    # -- create: wrong types and missing fields
    create("name is a number", name=5),
    create("name is null", name=None),
    create("name is missing", totalSteps=3),
    create("name is empty", name=""),
    create("name is only spaces", name="   "),
    create("name is 1 MB", name="x" * 1_000_000),
    create("totalSteps is a string", name="a", totalSteps="ten"),
    create("totalSteps is a fraction", name="a", totalSteps=1.5),
    create("totalSteps is 0", name="a", totalSteps=0),
    create("totalSteps is negative", name="a", totalSteps=-5),
    create("totalSteps is 2^63", name="a", totalSteps=BIG),
    create("tags is a string", name="a", tags="x"),
    create("tags hold a number", name="a", tags=[1]),
    create("tags hold an empty string", name="a", tags=[""]),
    create("config is a list", name="a", config=[1, 2]),
    create("id is not a job id", name="a", id="../../etc"),
    create("id is too short", name="a", id="abc"),
    create("graceSeconds is negative", name="a", graceSeconds=-1),
    create("graceSeconds is a day", name="a", graceSeconds=86_400),
    create("command has no argv", name="a", command={"argv": []}),
    create("command argv is a string", name="a", command={"argv": "python train.py"}),
    create("command names no program", name="a", command={"argv": [""]}),
    create("unknown field", name="a", colour="red"),
    create("the status is not the client's", name="a", status="running"),
    create_raw("config holds NaN", b'{"name": "a", "config": {"lr": NaN}}'),
    create_raw("config holds Infinity", b'{"name": "a", "config": {"lr": [Infinity]}}'),
    create_raw("config holds a lone surrogate", b'{"name": "a", "config": {"s": "\\ud800"}}'),
    create_raw("totalSteps is 1e400", b'{"name": "a", "totalSteps": 1e400}'),
    # -- create: bodies that are not a job at all
    create_raw("malformed JSON", b'{"name": ', status=400),
    create_raw("trailing garbage", b'{"name": "a"} x', status=400),
    create_raw("invalid UTF-8", b'{"name": "\xff\xfe"}', status=400),
    create_raw("deeply nested JSON", DEEP, status=400),
    create_raw("a JSON array", b'[{"name": "a"}]'),
    create_raw("a JSON string", b'"a"'),
    create_raw("JSON null", b"null"),
    create_raw("an empty body", b""),
    Case(
        "create: not JSON at all",
        "POST",
        JOBS,
        (400, 415, 422),
        content=b"name=a",
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    Case(
        "create: oversized body",
        "POST",
        JOBS,
        413,
        headers=JSON,
        content=b'{"name": "' + b"x" * MAX_BODY + b'"}',
    ),
    # -- progress: wrong types, ranges
    progress("seq is missing", points=[]),
    progress("seq is negative", seq=-1),
    progress("seq is 2^63", seq=BIG),
    progress("seq is a string", seq="one"),
    progress("points is an object", seq=1, points={"step": 1}),
    progress("a point is a number", seq=1, points=[1]),
    progress("step is negative", seq=1, points=[{"step": -1}]),
    progress("step is 2^63", seq=1, points=[{"step": BIG}]),
    progress("step is a fraction", seq=1, points=[{"step": 1.5}]),
    progress("currentStep is 2^63", seq=1, currentStep=BIG),
    progress("currentStep is negative", seq=1, currentStep=-3),
    progress("totalSteps is 0", seq=1, totalSteps=0),
    progress("totalSteps is negative", seq=1, totalSteps=-10),
    progress("loss is a word", seq=1, loss="low"),
    progress("loss is a list", seq=1, loss=[0.5]),
    progress("metric value is a word", seq=1, points=[{"metrics": {"lr": "fast"}}]),
    progress("metric value is an object", seq=1, points=[{"metrics": {"lr": {"v": 1}}}]),
    progress("metric name is empty", seq=1, points=[{"metrics": {"": 1.0}}]),
    progress("too many metrics", seq=1, points=[{"metrics": {f"m{i}": 1 for i in range(201)}}]),
    progress("time is negative", seq=1, points=[{"time": -1}]),
    progress("time is a word", seq=1, points=[{"time": "now"}]),
    progress("status is unknown", seq=1, status="done"),
    progress("status pending is not reportable", seq=1, status="pending"),
    progress("source is unknown", seq=1, source="stdin"),
    progress("exitCode beyond 32 bits", seq=1, status="running", exitCode=2**40),
    progress("reporter is empty", seq=1, reporter=""),
    progress("error is 1 MB", seq=1, status="running", error="e" * 1_000_000),
    progress("unknown field", seq=1, colour="red"),
    progress_raw("loss is a bare NaN literal", b'{"seq": 1, "points": [{"time": NaN}]}'),
    progress_raw(
        "metric name is a lone surrogate",
        b'{"seq": 1, "points": [{"metrics": {"\\ud800": 1}}]}',
        status=(400, 422),
    ),
    progress_raw("malformed JSON", b'{"seq": 1, "points": [', status=400),
    progress_raw("invalid UTF-8", b'{"seq": 1, "reporter": "\xc3\x28"}', status=400),
    progress_raw(
        "deeply nested JSON",
        b'{"seq": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        status=400,
    ),
    # -- list: filters, limits, cursors
    listing("unknown status filter", 422, status="done"),
    listing("unknown sort field", 422, sort="size"),
    listing("bad createdSince", 422, createdSince="yesterday"),
    listing("search text too long", 422, q="x" * 500),
    listing("status filter in capitals", 422, status="RUNNING"),
    listing("limit 0", 422, limit=0),
    listing("limit 501", 422, limit=501),
    listing("limit abc", 422, limit="abc"),
    listing("limit negative", 422, limit=-1),
    listing("cursor is garbage", 400, cursor="!!not a cursor!!"),
    listing("cursor is base64 of non-JSON", 400, cursor=b64(b"hello world")),
    listing("cursor is base64 of invalid UTF-8", 400, cursor=b64(b"\xff\xfe\xfd")),
    listing("cursor is JSON of an object", 400, cursor=b64(b'{"created": 1, "id": "x"}')),
    listing("cursor is JSON of three items", 400, cursor=b64(b'[1, "x", 3]')),
    listing("cursor is JSON of two strings", 400, cursor=b64(b'["1", "x"]')),
    listing("cursor is JSON of a boolean time", 400, cursor=b64(b'[true, "x"]')),
    listing("cursor is JSON of a numeric id", 400, cursor=b64(b"[1, 2]")),
    listing("cursor is JSON null", 400, cursor=b64(b"null")),
    listing("cursor holds a lone surrogate", 400, cursor=b64(b'[1, "\\ud800"]')),
    listing("cursor is deeply nested", 400, cursor=b64(b"[" * 150 + b"]" * 150)),
    listing("cursor is too long", (400, 422), cursor="A" * 5_000),
    # -- other reads
    Case("status: job_id is missing", "GET", "/api/training/status", 422),
    Case("metrics: limit 0", "GET", f"{JOBS}/{{job}}/metrics", 422, params={"limit": 0}),
    Case("metrics: after -1", "GET", f"{JOBS}/{{job}}/metrics", 422, params={"after": -1}),
    Case("metrics: after abc", "GET", f"{JOBS}/{{job}}/metrics", 422, params={"after": "abc"}),
    Case("metrics: after 2^63", "GET", f"{JOBS}/{{job}}/metrics", 422, params={"after": BIG}),
]


def snapshot(client: TestClient, job_id: str) -> tuple[Any, ...]:
    """Everything a bad request could have changed: every job, and the seeded job's points."""
    jobs = client.get(JOBS, params={"limit": 500})
    history = client.get(f"{JOBS}/{job_id}/metrics")
    assert jobs.status_code == history.status_code == 200
    return jobs.json(), history.json()


def assert_error_shape(response: Any, status: int | tuple[int, ...]) -> None:
    allowed = status if isinstance(status, tuple) else (status,)
    assert response.status_code in allowed, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "field"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error.get("field", ""), str)
    # A refusal repeats no megabyte of input back.
    assert len(response.content) < 10_000


@pytest.fixture
def seeded(client: TestClient) -> str:
    """A running job with a few points, so that every route has something to damage."""
    job = client.post(JOBS, json={"name": "seed", "totalSteps": 100}).json()
    batch = {"seq": 0, "status": "running", "points": [{"step": 1, "loss": 0.5}]}
    assert client.post(f"{JOBS}/{job['id']}/progress", json=batch).status_code == 200
    return str(job["id"])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_4xx_in_the_error_shape_and_changes_nothing(
    client: TestClient, seeded: str, case: Case
) -> None:
    before = snapshot(client, seeded)
    response = client.request(
        case.method,
        case.path.format(job=seeded),
        json=case.json,
        content=case.content,
        params=case.params,
        headers=case.headers,
    )
    assert_error_shape(response, case.status)
    assert snapshot(client, seeded) == before


def test_validation_errors_name_the_field(client: TestClient, seeded: str) -> None:
    response = client.post(f"{JOBS}/{seeded}/progress", json={"seq": 1, "points": [{"step": -1}]})
    assert response.json()["error"]["field"] == "points.0.step"
    response = client.post(JOBS, json={"name": "a", "totalSteps": 0})
    assert response.json()["error"]["field"] == "totalSteps"


def test_an_over_limit_chunked_body_is_413(client: TestClient, seeded: str) -> None:
    """No Content-Length to refuse up front: the cap counts the streamed body."""
    before = snapshot(client, seeded)

    def chunks() -> Any:
        yield b'{"name": "'
        for _ in range(9):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    response = client.post(JOBS, content=chunks(), headers=JSON)
    assert_error_shape(response, 413)
    assert response.json()["error"]["code"] == "payload_too_large"
    assert snapshot(client, seeded) == before


def test_a_body_just_under_the_limit_is_parsed(client: TestClient) -> None:
    """The cap is on bytes, not on a well-formed request: 8 MiB of padding is read, then
    refused by validation (the name is too long), not by size."""
    body = b'{"name": "' + b"x" * (MAX_BODY - 100) + b'"}'
    assert_error_shape(client.post(JOBS, content=body, headers=JSON), 422)


# Text with a NUL byte is legal JSON. Whether the API stores it or refuses it, the two
# backends must agree, and neither may answer 5xx (PostgreSQL text cannot hold NUL).
NUL_CURSOR = b64(b'[1e18, "x\\u0000"]')
NUL_CASES = [
    ("create: name", "POST", JOBS, {"name": "a\u0000b"}),
    ("create: tag", "POST", JOBS, {"name": "a", "tags": ["x\u0000"]}),
    ("create: config", "POST", JOBS, {"name": "a", "config": {"k\u0000": "v\u0000"}}),
    ("progress: reporter", "POST", f"{JOBS}/{{job}}/progress", {"seq": 3, "reporter": "r\u0000"}),
    ("progress: metric name", "POST", f"{JOBS}/{{job}}/progress",
     {"seq": 4, "points": [{"metrics": {"m\u0000": 1}}]}),
    ("progress: error", "POST", f"{JOBS}/{{job}}/progress",
     {"seq": 5, "status": "failed", "error": "boom\u0000"}),
    ("list: cursor id", "GET", f"{JOBS}?cursor={NUL_CURSOR}", None),
    ("get: job id", "GET", f"{JOBS}/x%00y", None),
    ("status: job id", "GET", "/api/training/status?job_id=x%00y", None),
    ("cancel: job id", "POST", f"{JOBS}/x%00y/cancel", None),
    ("progress: job id", "POST", f"{JOBS}/x%00y/progress", {"seq": 1}),
    ("metrics: job id", "GET", f"{JOBS}/x%00y/metrics", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body"), [c[1:] for c in NUL_CASES], ids=[c[0] for c in NUL_CASES]
)
def test_text_with_nul_is_stored_or_refused_never_5xx(
    client: TestClient, seeded: str, method: str, path: str, body: Any
) -> None:
    before = snapshot(client, seeded)
    response = client.request(method, path.format(job=seeded), json=body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_error_shape(response, response.status_code)
        assert snapshot(client, seeded) == before
    # Whatever was stored still reads back.
    assert client.get(JOBS).status_code == 200
    assert client.get(f"{JOBS}/{seeded}").status_code == 200


def test_a_made_up_cursor_of_the_right_shape_is_never_5xx(client: TestClient) -> None:
    """A NaN or infinite time is not a cursor the server hands out; whatever the answer, the
    two backends should agree on it."""
    client.post(JOBS, json={"name": "a"})
    for raw in (b'[NaN, "x"]', b'[Infinity, "x"]', b'[-Infinity, "x"]', b'[1e400, "x"]'):
        response = client.get(JOBS, params={"cursor": b64(raw)})
        assert response.status_code in (200, 400), (raw, response.text)
        if response.status_code == 400:
            assert_error_shape(response, 400)


def test_a_refused_create_leaves_the_list_readable(client: TestClient) -> None:
    """A value that cannot be sent back as JSON must not be stored: it would break every
    later list (the whole dashboard), not just this request."""
    lenient = TestClient(client.app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    lenient.headers.update(client.headers)
    body = b'{"name": "poison", "config": {"s": "\\ud800"}}'
    lenient.post(JOBS, content=body, headers=JSON)
    listed = lenient.get(JOBS)
    assert listed.status_code == 200, listed.text
    assert json.loads(listed.text)["total"] == 0
