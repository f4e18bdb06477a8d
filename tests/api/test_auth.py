"""Who may write and who may read. Write routes are read from the app, so a route added later
is covered without anyone editing this file."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from live import TOKEN, make_settings
from trainmon.server.app import create_app
from trainmon.server.auth import COOKIE_NAME
from trainmon.server.sessions import SessionBook
from trainmon.settings import Settings
from trainmon.store import Store

JOBS = "/api/training/jobs"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Routes that take the token in their own body (a login form) cannot demand it in a header.
NO_TOKEN_WRITES = frozenset({"/login", "/logout"})
# Reads that are public even off loopback: liveness, the API description, static assets, and
# the page that asks for the token.
PUBLIC_READS = frozenset({"/healthz", "/openapi.json", "/docs", "/login", "/login/link/{code}"})
STREAMS = frozenset({"/api/training/events"})
# Answers a signed-in session only, whatever else is sent: its own tests below.
SESSION_ONLY = frozenset({"/api/auth/csrf"})  # never end on their own: not read to the end
# A body each known write route accepts; an unknown route gets none (auth is checked first).
SAMPLE_BODIES: dict[str, Any] = {
    f"{JOBS}": {"name": "auth-check"},
    f"{JOBS}/{{job_id}}/progress": {"seq": 0, "points": [{"step": 1}]},
}


def app_routes(app: Any) -> list[tuple[str, frozenset[str]]]:
    """``(path, methods)`` of every route, included routers flattened (newer FastAPI nests
    them); mounts have no methods and are left out."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        flat: list[Any] = list(app.routes)
    else:
        flat = list(iter_route_contexts(app.routes))
    found = set()
    for route in flat:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if path is not None and methods:
            found.add((path, frozenset(methods)))
    return sorted(found, key=lambda r: (r[0], sorted(r[1])))


def _routes() -> list[tuple[str, frozenset[str]]]:
    """Read from an app that is never started: creating it opens nothing."""
    settings = Settings(token="x", data_dir=Path("/nonexistent"), db_url="sqlite://")
    return app_routes(create_app(settings, start_executor=False))


ROUTES = _routes()
WRITES = sorted(
    (path, method)
    for path, methods in ROUTES
    for method in methods & WRITE_METHODS
    if path not in NO_TOKEN_WRITES
)
READS = sorted(
    path for path, methods in ROUTES if "GET" in methods and path not in PUBLIC_READS | SESSION_ONLY
)


def route_id(route: tuple[str, str]) -> str:
    return f"{route[1]} {route[0]}"


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    """The app in process with NO credentials attached; each test adds what it means to send."""
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'auth.db'}")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def exposed(tmp_path: Path) -> Iterator[tuple[TestClient, Settings]]:
    """Bound beyond loopback: reads need the token or the session cookie."""
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'exposed.db'}", host="0.0.0.0")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client, settings


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def new_job(client: TestClient, name: str = "target") -> str:
    response = client.post(JOBS, json={"name": name}, headers=BEARER)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def everything(client: TestClient) -> Any:
    """All jobs and their points, read with the token: what a refused write must not touch."""
    jobs = client.get(JOBS, params={"limit": 500}, headers=BEARER).json()
    history = {
        j["id"]: client.get(f"{JOBS}/{j['id']}/metrics", headers=BEARER).json()["points"]
        for j in jobs["jobs"]
    }
    return jobs, history


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


def write(client: TestClient, path: str, method: str, headers: dict[str, str]) -> Any:
    job_id = new_job(client)
    return client.request(
        method,
        path.replace("{job_id}", job_id),
        json=SAMPLE_BODIES.get(path),
        headers=headers,
    )


def test_the_enumeration_found_the_write_routes() -> None:
    assert (JOBS, "POST") in WRITES
    assert (f"{JOBS}/{{job_id}}/cancel", "POST") in WRITES
    assert (f"{JOBS}/{{job_id}}/progress", "POST") in WRITES
    assert JOBS in READS and f"{JOBS}/{{job_id}}" in READS


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"X-Api-Key": TOKEN},
    ],
    ids=["none", "wrong", "longer", "prefix", "empty", "basic", "no-scheme", "other-header"],
)
@pytest.mark.parametrize(("path", "method"), WRITES, ids=[route_id(r) for r in WRITES])
def test_a_write_without_the_token_is_401_and_changes_nothing(
    app_client: TestClient, path: str, method: str, headers: dict[str, str]
) -> None:
    job_id = new_job(app_client)
    before = everything(app_client)
    response = app_client.request(
        method, path.replace("{job_id}", job_id), json=SAMPLE_BODIES.get(path), headers=headers
    )
    assert_error(response, 401, "unauthorized")
    assert TOKEN not in response.text
    assert everything(app_client) == before


@pytest.mark.parametrize(("path", "method"), WRITES, ids=[route_id(r) for r in WRITES])
def test_a_write_with_the_token_passes(app_client: TestClient, path: str, method: str) -> None:
    response = write(app_client, path, method, BEARER)
    assert response.status_code not in (401, 403), response.text
    if path in SAMPLE_BODIES or path.endswith("/cancel"):
        assert response.status_code in (200, 201), response.text


def test_the_bearer_scheme_is_case_insensitive(app_client: TestClient) -> None:
    response = app_client.post(
        JOBS, json={"name": "a"}, headers={"Authorization": f"bearer {TOKEN}"}
    )
    assert response.status_code == 201


@pytest.mark.parametrize("path", READS)
def test_reads_on_loopback_need_no_token(app_client: TestClient, path: str) -> None:
    if path in STREAMS:
        pytest.skip("a stream is checked by its own tests")
    job_id = new_job(app_client)
    response = app_client.get(path.replace("{job_id}", job_id), params={"job_id": job_id})
    assert response.status_code not in (401, 403), response.text


# -- the dashboard's session and its CSRF token ---------------------------------------------


def sign_in(client: TestClient) -> str:
    """Sign this client in through the page's form, as a person would; return the cookie."""
    response = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert response.status_code == 303, response.text
    cookie = response.cookies.get(COOKIE_NAME)
    assert cookie and cookie != TOKEN
    return str(cookie)


def csrf(client: TestClient) -> str:
    response = client.get("/api/auth/csrf")
    assert response.status_code == 200, response.text
    token = response.json()["csrfToken"]
    assert isinstance(token, str) and len(token) >= 32
    assert token != TOKEN and TOKEN not in response.text
    return str(token)


FORGED_BROWSER = {"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1"}


@pytest.mark.parametrize("headers", [{}, FORGED_BROWSER], ids=["plain", "forged-browser"])
def test_the_csrf_token_is_given_only_to_a_signed_in_session(
    app_client: TestClient, headers: dict[str, str]
) -> None:
    """Before: any local process (curl as `nobody`) read the CSRF token and then wrote."""
    assert_error(app_client.get("/api/auth/csrf", headers=headers), 401, "unauthorized")
    forged_cookie = {"Cookie": f"{COOKIE_NAME}=made-up", **headers}
    assert_error(app_client.get("/api/auth/csrf", headers=forged_cookie), 401, "unauthorized")


@pytest.mark.parametrize(
    "csrf_value",
    [
        hmac.new(TOKEN.encode(), b"csrf", hashlib.sha256).hexdigest(),  # the old derivation
        "0" * 64,
    ],
    ids=["old-global-csrf", "made-up"],
)
def test_forged_browser_headers_grant_nothing(app_client: TestClient, csrf_value: str) -> None:
    job_id = new_job(app_client)
    before = everything(app_client)
    headers = {"X-CSRF-Token": csrf_value, **FORGED_BROWSER}
    cancel = app_client.post(f"{JOBS}/{job_id}/cancel", headers=headers)
    assert_error(cancel, 401, "unauthorized")
    body = {"name": "takeover", "command": {"argv": ["/bin/sh", "-c", "id > /tmp/pwned"]}}
    assert_error(app_client.post(JOBS, json=body, headers=headers), 401, "unauthorized")
    assert everything(app_client) == before


@pytest.mark.parametrize(
    "origin_headers",
    [
        {"Sec-Fetch-Site": "same-origin"},
        {"Origin": "http://127.0.0.1"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1"},
        {"Origin": "http://localhost:8420", "Host": "localhost:8420"},
        {},
    ],
    ids=["sec-fetch-same-origin", "origin-matches-host", "both", "origin-with-port", "none"],
)
def test_a_signed_in_page_cancels_with_its_csrf_token(
    app_client: TestClient, origin_headers: dict[str, str]
) -> None:
    job_id = new_job(app_client)
    sign_in(app_client)
    response = app_client.post(
        f"{JOBS}/{job_id}/cancel", headers={"X-CSRF-Token": csrf(app_client), **origin_headers}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"


@pytest.mark.parametrize(
    "origin_headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "none"},
        {"Origin": "http://evil.example"},
        {"Origin": "http://127.0.0.1.evil.example"},
        {"Origin": "http://127.0.0.1:9999"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://127.0.0.1"},
    ],
    ids=[
        "cross-site", "same-site", "user-typed", "foreign-origin", "lookalike-origin",
        "other-port", "null-origin", "same-origin-but-foreign-origin",
        "cross-site-but-matching-origin",
    ],
)  # fmt: skip
def test_browser_headers_can_still_refuse_a_signed_in_write(
    app_client: TestClient, origin_headers: dict[str, str]
) -> None:
    job_id = new_job(app_client)
    sign_in(app_client)
    before = everything(app_client)
    response = app_client.post(
        f"{JOBS}/{job_id}/cancel", headers={"X-CSRF-Token": csrf(app_client), **origin_headers}
    )
    assert_error(response, 403, "forbidden")
    assert everything(app_client) == before


def test_a_session_without_its_csrf_token_cannot_write(app_client: TestClient) -> None:
    job_id = new_job(app_client)
    sign_in(app_client)
    for headers in ({}, {"X-CSRF-Token": "0" * 64, "Sec-Fetch-Site": "same-origin"}):
        response = app_client.post(f"{JOBS}/{job_id}/cancel", headers=headers)
        assert_error(response, 403, "forbidden")
    assert app_client.get(f"{JOBS}/{job_id}").json()["cancelRequested"] is False


def test_a_csrf_token_belongs_to_one_session(app_client: TestClient, tmp_path: Path) -> None:
    job_id = new_job(app_client)
    sign_in(app_client)
    first = csrf(app_client)
    app_client.cookies.clear()
    sign_in(app_client)
    assert csrf(app_client) != first
    response = app_client.post(f"{JOBS}/{job_id}/cancel", headers={"X-CSRF-Token": first})
    assert_error(response, 403, "forbidden")


def test_a_page_session_cannot_launch_a_command(app_client: TestClient) -> None:
    sign_in(app_client)
    headers = {"X-CSRF-Token": csrf(app_client), "Sec-Fetch-Site": "same-origin"}
    before = everything(app_client)
    body = {"name": "launch", "command": {"argv": ["/bin/true"]}}
    response = app_client.post(JOBS, json=body, headers=headers)
    assert_error(response, 403, "forbidden")
    assert "token" in response.json()["error"]["message"]
    assert everything(app_client) == before
    assert app_client.post(JOBS, json=body, headers=BEARER).status_code == 201


def test_the_csrf_token_is_not_a_bearer_token(app_client: TestClient) -> None:
    job_id = new_job(app_client)
    sign_in(app_client)
    headers = {"Authorization": f"Bearer {csrf(app_client)}"}
    assert_error(app_client.post(f"{JOBS}/{job_id}/cancel", headers=headers), 401, "unauthorized")


def test_a_wrong_bearer_is_not_rescued_by_a_good_session(app_client: TestClient) -> None:
    job_id = new_job(app_client)
    sign_in(app_client)
    headers = {
        "Authorization": "Bearer wrong",
        "X-CSRF-Token": csrf(app_client),
        "Sec-Fetch-Site": "same-origin",
    }
    assert_error(app_client.post(f"{JOBS}/{job_id}/cancel", headers=headers), 401, "unauthorized")


def test_a_new_write_token_ends_every_session(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'rotate.db'}"
    first = make_settings(tmp_path, db, token="first-token-0123456789")
    with TestClient(create_app(first), base_url="http://127.0.0.1") as client:
        client.post("/login", data={"token": first.token}, follow_redirects=False)
        cookie = client.cookies[COOKIE_NAME]
        assert client.get("/api/auth/csrf").status_code == 200
    second = make_settings(tmp_path, db, token="second-token-0123456789")
    with TestClient(create_app(second), base_url="http://127.0.0.1") as client:
        response = client.get("/api/auth/csrf", headers={"Cookie": f"{COOKIE_NAME}={cookie}"})
        assert_error(response, 401, "unauthorized")


def test_sign_out_ends_the_session_for_good(app_client: TestClient) -> None:
    cookie = sign_in(app_client)
    token = csrf(app_client)
    # Another site cannot sign you out: the form needs the session's CSRF token.
    refused = app_client.post("/logout", data={"csrf": "0" * 64}, follow_redirects=False)
    assert refused.status_code == 403
    response = app_client.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert response.status_code == 303
    app_client.cookies.clear()
    replayed = {"Cookie": f"{COOKIE_NAME}={cookie}"}  # a copy of the old cookie
    assert_error(app_client.get("/api/auth/csrf", headers=replayed), 401, "unauthorized")


def test_wrong_tokens_are_rate_limited(app_client: TestClient) -> None:
    for _ in range(5):
        response = app_client.post("/login", data={"token": "guess"}, follow_redirects=False)
        assert response.status_code == 401
    limited = app_client.post("/login", data={"token": "guess"}, follow_redirects=False)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 61
    # While limited, even the right token waits: guessing must not be able to race it.
    right = app_client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert right.status_code == 429
    assert COOKIE_NAME not in right.cookies


def test_the_session_cookie_is_httponly_and_strict(app_client: TestClient) -> None:
    response = app_client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header and "path=/" in header
    assert f"max-age={7 * 86400}" in header


def test_a_one_time_sign_in_link_signs_in_once(app_client: TestClient) -> None:
    assert_error(app_client.post("/api/auth/sign-in-links"), 401, "unauthorized")
    link = app_client.post("/api/auth/sign-in-links", headers=BEARER)
    assert link.status_code == 201, link.text
    path = link.json()["path"]
    assert path.startswith("/login/link/") and TOKEN not in path
    first = app_client.get(path, follow_redirects=False)
    assert first.status_code == 303 and COOKIE_NAME in first.cookies
    job_id = new_job(app_client)
    cancel = app_client.post(f"{JOBS}/{job_id}/cancel", headers={"X-CSRF-Token": csrf(app_client)})
    assert cancel.status_code == 200, cancel.text
    # A session cannot mint links for others; and the link is spent.
    headers = {"X-CSRF-Token": csrf(app_client)}
    assert_error(app_client.post("/api/auth/sign-in-links", headers=headers), 403, "forbidden")
    app_client.cookies.clear()
    again = app_client.get(path, follow_redirects=False)
    assert again.status_code == 410 and COOKIE_NAME not in again.cookies
    assert app_client.get("/login/link/made-up", follow_redirects=False).status_code == 410


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil"])
def test_sign_in_never_redirects_off_site(app_client: TestClient, target: str) -> None:
    response = app_client.post(
        "/login", data={"token": TOKEN, "next": target}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_sessions_expire(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'sessions.db'}")
    store.migrate()
    now = [1_000_000.0]
    settings = make_settings(tmp_path, store.url, session_days=1.0)
    book = SessionBook(store, settings, clock=lambda: now[0])
    secret = book.open()
    assert book.check(secret) is not None
    now[0] += 86400 - 1
    assert book.check(secret) is not None
    now[0] += 2
    assert book.check(secret) is None
    store.dispose()


# -- Host header -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8420",
        "127.0.0.1.evil.example",
        "localhost.evil.example",
        "10.0.0.1",
        "0.0.0.0",
        "",
    ],
)
@pytest.mark.parametrize("request_kind", ["read", "write"])
def test_a_foreign_host_header_is_400(app_client: TestClient, host: str, request_kind: str) -> None:
    before = everything(app_client)
    if request_kind == "read":
        response = app_client.get(JOBS, headers={"Host": host})
    else:
        response = app_client.post(JOBS, json={"name": "x"}, headers={"Host": host, **BEARER})
    assert_error(response, 400, "bad_request")
    assert everything(app_client) == before


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8420", "127.0.0.1:1", "[::1]", "[::1]:8420", "LOCALHOST"]
)
def test_loopback_host_headers_are_answered(app_client: TestClient, host: str) -> None:
    assert app_client.get(JOBS, headers={"Host": host}).status_code == 200


def test_a_configured_host_name_is_answered(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, f"sqlite:///{tmp_path / 'h.db'}", allowed_hosts=("trainmon.lan",)
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        assert client.get(JOBS, headers={"Host": "trainmon.lan:8420"}).status_code == 200
        assert client.get(JOBS, headers={"Host": "other.lan"}).status_code == 400


# -- bound beyond loopback ---------------------------------------------------------------------


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Cookie": f"{COOKIE_NAME}=forged"},
        {"Cookie": f"{COOKIE_NAME}={TOKEN}"},
    ],
    ids=["nothing", "wrong-token", "forged-cookie", "token-as-cookie"],
)
def test_off_loopback_reads_without_credentials_are_refused(
    exposed: tuple[TestClient, Settings], path: str, headers: dict[str, str]
) -> None:
    client, _ = exposed
    client.follow_redirects = False
    job_id = new_job(client)
    response = client.get(
        path.replace("{job_id}", job_id), params={"job_id": job_id}, headers=headers
    )
    if path.startswith("/api/"):
        assert_error(response, 401, "unauthorized")
    else:  # a page may instead send the browser to sign in
        assert response.status_code in (200, 302, 303, 307, 401), response.text[:300]
    assert job_id not in response.text and "target" not in response.text  # no job data leaks


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize("credential", ["bearer", "session-cookie"])
def test_off_loopback_reads_with_the_token_or_the_session_cookie(
    exposed: tuple[TestClient, Settings], path: str, credential: str
) -> None:
    client, _ = exposed
    if path in STREAMS:
        pytest.skip("a stream is checked by its own tests")
    job_id = new_job(client)
    if credential == "bearer":
        headers = BEARER
    else:
        headers = {"Cookie": f"{COOKIE_NAME}={sign_in(client)}"}
        client.cookies.clear()
    response = client.get(
        path.replace("{job_id}", job_id), params={"job_id": job_id}, headers=headers
    )
    assert response.status_code == 200, response.text


def test_off_loopback_the_csrf_path_also_needs_the_session(
    exposed: tuple[TestClient, Settings],
) -> None:
    client, _ = exposed
    job_id = new_job(client)
    cookie = {"Cookie": f"{COOKIE_NAME}={sign_in(client)}"}
    client.cookies.clear()
    token = client.get("/api/auth/csrf", headers=cookie).json()["csrfToken"]
    headers = {"X-CSRF-Token": token, "Sec-Fetch-Site": "same-origin"}
    assert_error(client.post(f"{JOBS}/{job_id}/cancel", headers=headers), 401, "unauthorized")
    response = client.post(f"{JOBS}/{job_id}/cancel", headers={**headers, **cookie})
    assert response.status_code == 200, response.text


def test_off_loopback_health_stays_public(exposed: tuple[TestClient, Settings]) -> None:
    client, _ = exposed
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(("path", "method"), WRITES, ids=[route_id(r) for r in WRITES])
def test_off_loopback_the_session_cookie_alone_cannot_write(
    exposed: tuple[TestClient, Settings], path: str, method: str
) -> None:
    """The cookie rides along on any cross-site request: it must never be enough to write."""
    client, _ = exposed
    cookie = {"Cookie": f"{COOKIE_NAME}={sign_in(client)}"}
    client.cookies.clear()
    job_id = new_job(client)
    before = everything(client)
    response = client.request(
        method, path.replace("{job_id}", job_id), json=SAMPLE_BODIES.get(path), headers=cookie
    )
    assert response.status_code in (401, 403), response.text
    assert everything(client) == before
