"""A real ``trainmon serve`` subprocess: the paths an in-process app cannot show (startup
output, the token file, the bound address, signals, a restart, raw HTTP)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from live import TOKEN, LiveServer, free_port, make_settings
from trainmon.server.app import create_app
from trainmon.service import JobService
from trainmon.store import Store

JOBS = "/api/training/jobs"
READY_TIMEOUT = 20.0


def wait_for(condition: Callable[[], bool], what: str, output: Callable[[], str]) -> None:
    """Poll with a deadline; on timeout fail with the server's output."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} within {READY_TIMEOUT} s; server output:\n{output()}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "d", executor=False)
    live.data_dir.mkdir(parents=True)
    live.start()
    yield live
    live.stop()
    live._log.close()  # LiveServer leaves its log file open (a ResourceWarning when collected)


class Serve:
    """``trainmon serve`` exactly as a user types it: no --host, our own environment."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("TRAINMON_")}
        self.env = {**base, "TRAINMON_DATA_DIR": str(data_dir), **env}
        self.log = data_dir.parent / f"serve-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Serve:
        command = [sys.executable, "-m", "trainmon.cli", "serve", "--port", str(self.port),
                   "--no-executor"]  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(self.healthy, "the server did not answer /healthz", self.output)
        return self

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"server exited {self.process.returncode}:\n{self.output()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def serving(data_dir: Path, **env: str) -> Iterator[Serve]:
    data_dir.mkdir(parents=True, exist_ok=True)
    serve = Serve(data_dir, env)
    try:
        yield serve.start()
    finally:
        serve.stop()


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port``, from /proc (Linux)."""
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # /proc prints each 32-bit word in host (little-endian) order.
            words = [raw[i : i + 4][::-1] for i in range(0, len(raw), 4)]
            found.add(socket.inet_ntop(family, b"".join(words)))
    return found


# -- startup -----------------------------------------------------------------------------------


def test_it_starts_answers_healthz_and_prints_the_dashboard_url(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    wanted = f"{server.url}/"
    wait_for(lambda: wanted in server.output(), "the dashboard URL was not printed", server.output)
    assert "Traceback" not in server.output()


def test_first_start_creates_the_token_file_with_mode_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    with serving(data_dir) as serve:
        token_file = data_dir / "token"
        assert token_file.exists(), serve.output()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32
        assert token not in serve.output()  # the token is never printed
        authorised = {"Authorization": f"Bearer {token}"}
        response = httpx.post(f"{serve.url}{JOBS}", json={"name": "a"}, headers=authorised)
        assert response.status_code == 201, response.text
        wrong = {"Authorization": "Bearer guess"}
        assert (
            httpx.post(f"{serve.url}{JOBS}", json={"name": "b"}, headers=wrong).status_code == 401
        )
    # A second start keeps the token: clients that read it stay authorised.
    with serving(data_dir) as serve:
        assert (data_dir / "token").read_text().strip() == token
        response = httpx.post(f"{serve.url}{JOBS}", json={"name": "c"}, headers=authorised)
        assert response.status_code == 201


def test_trainmon_token_wins_over_the_token_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "env"
    data_dir.mkdir()
    (data_dir / "token").write_text("token-from-the-file\n")
    (data_dir / "token").chmod(0o600)
    with serving(data_dir, TRAINMON_TOKEN="token-from-the-environment") as serve:

        def create(token: str) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            return httpx.post(f"{serve.url}{JOBS}", json={"name": "a"}, headers=headers).status_code

        assert create("token-from-the-environment") == 201
        assert create("token-from-the-file") == 401
    assert (data_dir / "token").read_text() == "token-from-the-file\n"


def test_it_binds_loopback_by_default(tmp_path: Path) -> None:
    with serving(tmp_path / "bind", TRAINMON_TOKEN=TOKEN) as serve:
        addresses = listening_addresses(serve.port)
        assert addresses, "no listening socket found in /proc/net"
        assert addresses <= {"127.0.0.1", "::1"}, addresses
        assert "warning" not in serve.output().lower()


# -- stop and restart --------------------------------------------------------------------------


def test_sigterm_stops_it_cleanly(server: LiveServer) -> None:
    with server.client() as client:
        job = client.post(JOBS, json={"name": "before-stop"}).json()
        client.post(f"{JOBS}/{job['id']}/progress", json={"seq": 0, "points": [{"step": 1}]})
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(timeout=10)
    # uvicorn re-raises the signal after a graceful shutdown, so -SIGTERM is a clean exit too.
    assert code in (0, -signal.SIGTERM), server.output()
    assert "Traceback" not in server.output()
    assert "error" not in server.output().lower()
    # The store was closed: SQLite folds its write-ahead log back when the last connection ends.
    assert not (server.data_dir / "trainmon.db-wal").exists()
    with socket.socket() as sock:  # the port is free again
        sock.bind(("127.0.0.1", server.port))


def test_data_persists_across_a_restart(server: LiveServer) -> None:
    with server.client() as client:
        job = client.post(JOBS, json={"name": "persisted", "totalSteps": 10}).json()
        batch = {"seq": 0, "status": "running", "points": [{"step": 4, "loss": "NaN"}]}
        client.post(f"{JOBS}/{job['id']}/progress", json=batch)
        before = client.get(f"{JOBS}/{job['id']}").json()
        history = client.get(f"{JOBS}/{job['id']}/metrics").json()
    server.stop()
    server.start()
    with server.client() as client:
        after = client.get(f"{JOBS}/{job['id']}").json()
        assert {k: v for k, v in after.items() if k != "stale"} == {
            k: v for k, v in before.items() if k != "stale"
        }
        assert client.get(f"{JOBS}/{job['id']}/metrics").json() == history
        # The batch's (reporter, seq) is remembered too: a resend after restart is a no-op.
        again = client.post(f"{JOBS}/{job['id']}/progress", json=batch).json()
        assert again["applied"] is False


# -- raw HTTP ---------------------------------------------------------------------------------


def raw_request(port: int, data: bytes, body_chunks: Iterable[bytes] = ()) -> bytes:
    """Send bytes as they are (httpx would fix the Host header); read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before the body ends
        answer = b""
        while True:
            try:
                part = sock.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            answer += part
        return answer


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.nip.io"])
def test_a_foreign_host_header_is_refused(server: LiveServer, host: str) -> None:
    answer = raw_request(
        server.port, f"GET {JOBS} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b'"bad_request"' in body
    response = httpx.get(f"{server.url}{JOBS}", headers={"Host": f"localhost:{server.port}"})
    assert response.status_code == 200


def test_an_over_limit_chunked_body_is_413_not_a_crash(server: LiveServer) -> None:
    head = (
        f"POST {JOBS} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {server.token}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    piece = b"x" * (1024 * 1024)

    def chunks() -> Iterator[bytes]:
        yield b'a\r\n{"name": "\r\n'
        for _ in range(9):  # 9 MiB: over the 8 MiB cap
            yield b"%x\r\n" % len(piece) + piece + b"\r\n"
        yield b'2\r\n"}\r\n0\r\n\r\n'

    answer = raw_request(server.port, head, chunks())
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"payload_too_large"' in answer
    # Still serving, and nothing was stored.
    with server.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get(JOBS).json()["total"] == 0
    assert server.process is not None and server.process.poll() is None
    assert "Traceback" not in server.output()


def test_an_over_limit_declared_body_is_413_before_it_is_read(server: LiveServer) -> None:
    head = (
        f"POST {JOBS} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {server.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {64 * 1024 * 1024}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = raw_request(server.port, head)  # no body sent at all: the answer must not wait
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]


# -- shutdown and the liveness watcher (in process) --------------------------------------------


def test_shutdown_does_not_close_the_store_under_the_liveness_watcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watcher polls the store from a worker thread every second; shutdown must let that
    call finish before disposing the store (else its connection leaks: psycopg warns
    "connection was deleted while still open", a failure under warnings-as-errors)."""
    inside, disposed, returned = threading.Event(), threading.Event(), threading.Event()
    overlapped: list[bool] = []
    original_check, original_dispose = JobService.announce_newly_stale, Store.dispose

    def announce_newly_stale(self: JobService, since: float | None) -> Any:
        found = original_check(self, since)
        inside.set()
        # Hold the call open until the store is disposed, or 2 s if shutdown waits for us.
        overlapped.append(disposed.wait(timeout=2))
        returned.set()
        return found

    def dispose(self: Store) -> None:
        disposed.set()
        original_dispose(self)

    monkeypatch.setattr(JobService, "announce_newly_stale", announce_newly_stale)
    monkeypatch.setattr(Store, "dispose", dispose)
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'w.db'}", heartbeat_interval=0.1)
    with TestClient(create_app(settings), base_url="http://127.0.0.1"):
        assert inside.wait(timeout=10), "the liveness watcher never ran"
    assert returned.wait(timeout=10)
    assert overlapped[0] is False, "the store was disposed while the watcher was using it"
