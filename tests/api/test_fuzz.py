"""Generated input never gives a 5xx: schemathesis over the app's own OpenAPI, and a
Hypothesis property over progress batches. Both are derandomized: a failure reproduces."""

from __future__ import annotations

import contextlib
import json
import warnings
import zlib
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from live import TOKEN, make_settings
from trainmon.server.app import create_app

# On a failure, Hypothesis' pytest plugin imports its patch writer (libcst), whose import
# warns (mypy_extensions.TypedDict) and, with warnings as errors, turns the failure report
# into an INTERNALERROR that hides it. Importing it here first, quietly, keeps reports readable.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    with contextlib.suppress(ImportError):
        import hypothesis.extra._patching  # noqa: F401

AUTH = {"Authorization": f"Bearer {TOKEN}"}
JOBS = "/api/training/jobs"
# schemathesis' in-process client sends this Host; the server answers to configured names.
TEST_HOST = "testserver"


@pytest.fixture
def api_schema(tmp_path: Path) -> Any:
    """SQLite only: the named cases in test_bad_input cover what PostgreSQL refuses."""
    db_url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    app = create_app(make_settings(tmp_path, db_url, allowed_hosts=(TEST_HOST,)))
    # schemathesis runs the lifespan itself (on loading) and ends it when the test ends.
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def real_job(case: Any) -> str:
    """A fresh job on the app under test, so that job routes get past the 404."""
    client = TestClient(case.operation.schema.app, base_url="http://127.0.0.1", headers=AUTH)
    job_id = client.post(JOBS, json={"name": "fuzz-target", "totalSteps": 100}).json()["id"]
    if zlib.crc32(repr(case.body).encode()) % 3 == 0:
        client.post(f"{JOBS}/{job_id}/progress", json={"seq": 0, "status": "running"})
    return str(job_id)


# An event stream never ends: each generated request would wait out the read timeout.
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=r"/events$")


def error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx carries the one error shape."""
    if 400 <= response.status_code < 500 and case.method != "HEAD":
        body = response.json()
        assert set(body) == {"error"}, body
        assert isinstance(body["error"]["code"], str), body
        assert isinstance(body["error"]["message"], str), body
    return None


@schema.parametrize()
@settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_never_give_a_5xx(case: Any) -> None:
    # Two in three cases name a job that exists (chosen by content: the run stays reproducible).
    names_a_job = "job_id" in (case.path_parameters or {})
    if names_a_job and zlib.crc32(repr(case.path_parameters).encode()) % 3:
        case.path_parameters["job_id"] = real_job(case)
    response = case.call(headers=AUTH)
    case.validate_response(response, checks=[not_a_server_error], headers=AUTH)
    error_shape(None, response, case)


# -- progress batches --------------------------------------------------------------------------

# Any code point, lone surrogates and NUL included: JSON can carry them all (escaped).
TEXT = st.text(
    st.sampled_from("a-_\x00\ud800\udfff\u2028\ufeff") | st.characters(exclude_categories=[]),
    max_size=8,
)
SPECIAL = st.sampled_from(["NaN", "Infinity", "-Infinity"])
FINITE = st.floats(allow_nan=False, allow_infinity=False)


def batches(valid: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Batches in the documented ranges, or (``valid=False``) with values just outside them."""

    def pick(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> Any:
        return good if valid else st.one_of(good, bad)

    scalar = pick(st.one_of(FINITE, SPECIAL, st.none()), st.integers(-(2**70), 2**70) | TEXT)
    step = pick(
        st.one_of(st.integers(0, 2**63 - 1), st.none()),
        st.one_of(st.integers(-(2**64), 2**64), st.sampled_from([1.5, "7", True])),
    )
    point = st.fixed_dictionaries(
        {},
        optional={
            "step": step,
            "time": pick(st.floats(0, 2e9), st.floats(allow_nan=False)),
            "loss": scalar,
            "metrics": st.dictionaries(TEXT, scalar, max_size=4),
        },
    )
    return st.fixed_dictionaries(
        {"seq": pick(st.integers(0, 6), st.integers(-2, 2**64))},
        optional={
            "reporter": st.one_of(st.sampled_from(["sdk-a", "sdk-b"]), TEXT),
            "points": st.lists(point, max_size=6),
            "status": pick(
                st.sampled_from([None, "running", "completed", "failed", "cancelled"]),
                st.sampled_from(["pending", "queued", "x"]),
            ),
            "error": st.one_of(st.none(), TEXT),
            "endReason": st.one_of(st.none(), TEXT),
            "exitCode": pick(st.integers(-(2**31), 2**31 - 1), st.integers(-(2**40), 2**40)),
            "currentStep": step,
            "totalSteps": pick(st.integers(1, 2**63 - 1) | st.none(), st.integers(-3, 2**64)),
            "loss": scalar,
            "source": pick(st.sampled_from(["sdk", "output"]), st.just("other")),
        },
    )


JUNK = st.recursive(
    st.one_of(st.none(), st.booleans(), FINITE, TEXT),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner),
    max_leaves=10,
)


@given(
    body=st.one_of(batches(valid=True), batches(valid=False), JUNK),
    reuse=st.booleans(),
    cancel=st.booleans(),
)
@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_random_progress_batches_never_give_a_5xx(
    client: TestClient, body: Any, reuse: bool, cancel: bool
) -> None:
    """A batch to a new job, or to the last one, in whatever state earlier batches left it."""
    existing = client.get(JOBS, params={"limit": 1}).json()["jobs"]
    if reuse and existing:
        job = existing[0]
    else:
        job = client.post(JOBS, json={"name": "fuzzed", "totalSteps": 50}).json()
    if cancel:
        client.post(f"{JOBS}/{job['id']}/cancel")
    before = client.get(f"{JOBS}/{job['id']}").json()

    # Serialised here, ASCII-escaped, so that lone surrogates travel as JSON allows.
    response = client.post(
        f"{JOBS}/{job['id']}/progress",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )

    assert response.status_code < 500, response.text
    after = client.get(f"{JOBS}/{job['id']}").json()
    if response.status_code != 200:
        assert set(response.json()) == {"error"}
        assert after == before
        return
    answer = response.json()
    assert answer["status"] == after["status"]
    assert 0.0 <= after["progress"] <= 100.0
    if before["status"] in ("completed", "failed", "cancelled"):
        assert after["status"] == before["status"]  # terminal states are final
        assert after["finishedAt"] == before["finishedAt"]
    assert client.get(f"{JOBS}/{job['id']}/metrics").status_code == 200
