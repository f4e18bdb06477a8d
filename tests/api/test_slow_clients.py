"""Issue 9 item 10: idle, slow and numerous clients cannot stop a real ``trainmon serve``.

Before the fix, 256 idle sockets (at ulimit -n 256) stopped the server for everyone: nothing
timed a connection out before its first request, and accept() failed at the descriptor limit.
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from live import LiveServer
from trainmon.server.limits import RESERVED_FDS, busy_response, connection_cap
from trainmon.settings import SettingsError, build_settings

DEADLINE = 10.0


@contextmanager
def fd_soft_limit(limit: int) -> Iterator[None]:
    """Children started inside inherit a soft descriptor limit of ``limit`` (the issue's
    ``ulimit -n 256``); this process gets its own back afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextmanager
def serving(tmp_path: Path, *args: str, fd_limit: int | None = None) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "d", executor=False, extra_args=args)
    server.data_dir.mkdir(parents=True)
    try:
        if fd_limit is None:
            server.start()
        else:
            with fd_soft_limit(fd_limit):
                server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def many_fds() -> None:
    """This test process opens hundreds of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2_000 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (2_000, hard))


def connect(server: LiveServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)


def read_until_closed(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took; fails if the
    connection is still open after ``within`` seconds."""
    began = time.monotonic()
    received = b""
    while True:
        left = within - (time.monotonic() - began)
        if left <= 0:
            pytest.fail(f"still open after {within} s; got {received[:200]!r}")
        sock.settimeout(left)
        try:
            data = sock.recv(65_536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            data = b""
        if not data:
            return received, time.monotonic() - began
        received += data


def healthz_seconds(server: LiveServer) -> float:
    began = time.perf_counter()
    response = httpx.get(f"{server.url}/healthz", timeout=DEADLINE)
    assert response.status_code == 200, response.text
    return time.perf_counter() - began


def test_500_idle_sockets_leave_healthz_answering(tmp_path: Path, many_fds: None) -> None:
    # Started under ulimit -n 256, as in the issue: serve raises its soft limit to the hard one.
    with serving(tmp_path, fd_limit=256) as server:
        idle = [connect(server) for _ in range(500)]
        try:
            # A round trip on the last one proves all 500 were accepted and are held open.
            idle[-1].sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert idle[-1].recv(100).startswith(b"HTTP/1.1 200")
            times = [healthz_seconds(server) for _ in range(10)]
            assert max(times) < 1.0, (times, server.output())
        finally:
            for sock in idle:
                sock.close()


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    tmp_path: Path,
) -> None:
    with serving(tmp_path, "--header-timeout", "1") as server, connect(server) as sock:
        answer, took = read_until_closed(sock, within=DEADLINE)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 0.8 < took < 5.0, took


def test_slowloris_headers_are_cut_off_at_the_header_timeout(tmp_path: Path) -> None:
    """Bytes keep arriving, but the deadline is for the whole header block."""
    with serving(tmp_path, "--header-timeout", "1") as server, connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        began = time.monotonic()
        closed = False
        while time.monotonic() - began < DEADLINE:
            try:
                sock.sendall(b"X-a: b\r\n")  # the load itself: one header every 0.1 s
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.1)
            try:
                data = sock.recv(1_000)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""
            if not data or data.startswith(b"HTTP/1.1 408"):
                closed = True
                break
        took = time.monotonic() - began
        assert closed and took < 5.0, (took, server.output())


def test_a_body_sent_too_slowly_is_cut_off_at_the_body_timeout(tmp_path: Path) -> None:
    with serving(tmp_path, "--body-timeout", "1") as server, connect(server) as sock:
        sock.sendall(
            b"POST /api/training/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name":'
        )
        _, took = read_until_closed(sock, within=DEADLINE)
        assert 0.8 < took < 5.0, took


def test_keep_alive_pauses_are_not_header_timeouts_and_idle_ones_end(tmp_path: Path) -> None:
    """The SDK keeps one connection and flushes every 0.5 s; a pause longer than the header
    timeout but shorter than the keep-alive one keeps that connection."""
    args = ("--header-timeout", "0.5", "--keep-alive-timeout", "2")
    with serving(tmp_path, *args) as server, connect(server) as sock:
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        for _ in range(2):
            sock.sendall(request)
            sock.settimeout(DEADLINE)
            assert sock.recv(1_000).startswith(b"HTTP/1.1 200")
            # Poll until a whole header timeout (and then some) has passed, the socket still open.
            began = time.monotonic()
            while time.monotonic() - began < 1.0:
                sock.settimeout(0.05)
                with suppress(TimeoutError):
                    assert sock.recv(1) != b"", "closed during a keep-alive pause"
        _, took = read_until_closed(sock, within=DEADLINE)
        assert took < 3.0, took


def test_connections_over_the_cap_get_503_then_service_resumes(tmp_path: Path) -> None:
    with serving(tmp_path, "--max-connections", "20") as server:
        idle = [connect(server) for _ in range(20)]
        try:
            idle[-1].sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert idle[-1].recv(100).startswith(b"HTTP/1.1 200")  # all 20 accepted
            response = httpx.get(f"{server.url}/healthz", timeout=DEADLINE)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            assert response.json()["error"]["code"] == "server_busy"
            assert "20 open connections" in response.json()["error"]["message"]
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + DEADLINE
        while True:
            with suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, server.output()


def test_event_streams_have_their_own_cap(tmp_path: Path) -> None:
    with serving(tmp_path, "--max-event-streams", "2") as server:
        url = f"{server.url}/api/training/events"
        with (
            httpx.Client(timeout=DEADLINE) as a,
            httpx.Client(timeout=DEADLINE) as b,
            a.stream("GET", url) as first,
            b.stream("GET", url) as second,
        ):
            assert first.status_code == second.status_code == 200
            # Keep the line iterators: one dropped mid-stream closes its connection.
            lines = [first.iter_lines(), second.iter_lines()]
            assert all(next(stream).startswith("retry:") for stream in lines)
            third = httpx.get(url, timeout=DEADLINE)
            assert third.status_code == 503, third.text
            assert third.headers["retry-after"] == "1"
            assert third.json()["error"]["code"] == "server_busy"
            assert healthz_seconds(server) < 1.0  # other routes are not affected
        # Closed streams give their slots back (the server notices the disconnect).
        deadline = time.monotonic() + DEADLINE
        while True:
            with httpx.Client(timeout=DEADLINE) as c, c.stream("GET", url) as again:
                if again.status_code == 200:
                    break
            assert time.monotonic() < deadline, server.output()


def test_a_503_is_one_complete_json_response() -> None:
    raw = busy_response("more than 3 open connections")
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 503") and b"connection: close" in head
    assert f"content-length: {len(body)}".encode() in head


@pytest.mark.parametrize(
    ("setting", "fd_limit", "cap"),
    [(1_000, 20_000, 1_000), (1_000, 256, 256 - RESERVED_FDS), (10, 20, 1)],
)
def test_connection_cap_fits_under_the_descriptor_limit(
    setting: int, fd_limit: int, cap: int
) -> None:
    assert connection_cap(setting, fd_limit) == cap


def test_limits_from_env_and_flags(tmp_path: Path) -> None:
    env = {"TRAINMON_DATA_DIR": str(tmp_path)}
    default = build_settings(env=env)
    assert (default.max_connections, default.max_event_streams) == (1_000, 100)
    assert (default.header_timeout, default.body_timeout, default.keep_alive_timeout) == (
        10.0, 30.0, 20.0
    )  # fmt: skip
    assert default.keep_alive_timeout > 10 * 0.5  # well above the SDK's flush interval
    custom = build_settings(
        env={**env, "TRAINMON_MAX_CONNECTIONS": "50", "TRAINMON_HEADER_TIMEOUT": "2.5"},
        limits={"max_connections": 70, "body_timeout": None},
    )
    assert (custom.max_connections, custom.header_timeout, custom.body_timeout) == (70, 2.5, 30)
    with pytest.raises(SettingsError, match="TRAINMON_KEEP_ALIVE_TIMEOUT"):
        build_settings(env={**env, "TRAINMON_KEEP_ALIVE_TIMEOUT": "soon"})
