"""One JSON error shape on every route: the routes are read from the app, so a route added
later is checked without anyone editing this file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Mount

from live import TOKEN, make_settings
from trainmon.server.app import create_app
from trainmon.settings import Settings

UNKNOWN_ID = "000000000000"
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# A body the route accepts, so that a 404 comes from the missing job, not from validation.
SAMPLE_BODIES: dict[str, Any] = {
    "/api/training/jobs/{job_id}/progress": {"seq": 0},
    "/api/training/jobs": {"name": "shape"},
}


def app_routes(app: Any) -> list[tuple[str, frozenset[str]]]:
    """``(path, methods)`` of every route, with included routers flattened (FastAPI >= 0.116
    nests them), mounts as ``(path, {})``."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        flat: list[Any] = list(app.routes)
    else:
        flat = list(iter_route_contexts(app.routes))
    found = []
    for route in flat:
        path = getattr(route, "path", None)
        if path is None:
            continue
        found.append((path, frozenset(getattr(route, "methods", None) or ())))
    return sorted(set(found), key=lambda r: (r[0], sorted(r[1])))


def is_mount(app: Any, path: str) -> bool:
    return any(
        isinstance(r, Mount) and r.path == path for r in app.routes if isinstance(r, BaseRoute)
    )


def _routes() -> list[tuple[str, frozenset[str]]]:
    """Collected once at import, from an app that is never started (nothing is created)."""
    settings = Settings(token="x", data_dir=Path("/nonexistent"), db_url="sqlite://")
    app = create_app(settings, start_executor=False)
    return [(path, methods) for path, methods in app_routes(app) if not is_mount(app, path)]


ROUTES = _routes()
JOB_ROUTES = [
    (path, method)
    for path, methods in ROUTES
    if "{job_id}" in path
    for method in sorted(methods - {"HEAD"})
]


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator[TestClient]:
    """For checks that never reach the database: one backend is enough."""
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'shape.db'}")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        test_client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield test_client


def assert_error_shape(response: Any, status: int, code: str | None = None) -> None:
    assert response.status_code == status, (response.request.url, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "field"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if "field" in error:
        assert isinstance(error["field"], str) and error["field"]
    if code is not None:
        assert error["code"] == code


def test_the_app_has_the_documented_routes() -> None:
    """The enumeration works: if it found nothing, every test below would pass vacuously."""
    paths = {path for path, _ in ROUTES}
    for documented in (
        "/healthz",
        "/api/training/jobs",
        "/api/training/status",
        "/api/training/jobs/{job_id}",
        "/api/training/jobs/{job_id}/cancel",
        "/api/training/jobs/{job_id}/progress",
        "/api/training/jobs/{job_id}/metrics",
        "/api/auth/csrf",
    ):
        assert documented in paths
    assert len(JOB_ROUTES) >= 4


@pytest.mark.parametrize(("path", "method"), JOB_ROUTES, ids=[f"{m} {p}" for p, m in JOB_ROUTES])
def test_an_unknown_job_is_404_in_the_error_shape(
    client: TestClient, path: str, method: str
) -> None:
    body = SAMPLE_BODIES.get(path)
    response = client.request(method, path.replace("{job_id}", UNKNOWN_ID), json=body)
    assert_error_shape(response, 404, "not_found")
    assert UNKNOWN_ID in response.json()["error"]["message"]


def test_status_of_an_unknown_job_is_404_in_the_error_shape(client: TestClient) -> None:
    response = client.get("/api/training/status", params={"job_id": UNKNOWN_ID})
    assert_error_shape(response, 404, "not_found")


SERVED: dict[str, set[str]] = {}
for _path, _methods in ROUTES:
    SERVED.setdefault(_path, set()).update(_methods)
WRONG_METHODS = [
    (path, method)
    for path, methods in sorted(SERVED.items())
    for method in ALL_METHODS
    if method not in methods
]


@pytest.mark.parametrize(
    ("path", "method"), WRONG_METHODS, ids=[f"{m} {p}" for p, m in WRONG_METHODS]
)
def test_a_wrong_method_is_405_in_the_error_shape(
    sqlite_client: TestClient, path: str, method: str
) -> None:
    response = sqlite_client.request(method, path.replace("{job_id}", UNKNOWN_ID))
    assert_error_shape(response, 405, "method_not_allowed")
    assert "allow" in {k.lower() for k in response.headers}


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/api",
        "/api/training",
        "/api/training/nope",
        "/api/training/jobs/x/nope",
        "/api/training/jobs/x/cancel/again",
        "/static/no-such-asset.js",
        "/static/%2e%2e/pyproject.toml",
    ],
)
def test_an_unknown_route_is_404_in_the_error_shape(sqlite_client: TestClient, path: str) -> None:
    assert_error_shape(sqlite_client.get(path), 404, "not_found")
    # Under /static, a POST may be refused as a wrong method or as no such file.
    response = sqlite_client.post(path, json={})
    assert_error_shape(response, 405 if response.status_code == 405 else 404)


def test_errors_outside_the_routes_keep_the_shape(sqlite_client: TestClient) -> None:
    """Refusals by the middleware (Host, size) and by auth use the same shape."""
    client = sqlite_client
    assert_error_shape(client.get("/healthz", headers={"Host": "evil.example"}), 400, "bad_request")
    big = {"content-type": "application/json", "content-length": str(9 * 1024 * 1024)}
    response = client.post("/api/training/jobs", content=b"{}", headers=big)
    assert_error_shape(response, 413, "payload_too_large")
    response = client.post("/api/training/jobs", json={"name": "a"}, headers={"Authorization": ""})
    assert_error_shape(response, 401, "unauthorized")


def test_a_conflict_keeps_the_shape(client: TestClient) -> None:
    job = client.post("/api/training/jobs", json={"name": "done"}).json()
    client.post(f"/api/training/jobs/{job['id']}/cancel")
    response = client.post(f"/api/training/jobs/{job['id']}/cancel")
    assert_error_shape(response, 409, "conflict")
