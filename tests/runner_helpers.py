"""Helpers for the runner's tests: polling with a deadline, a fake progress endpoint that
records what a supervisor sends, running a supervisor, and looking for leftover processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx

from trainmon.runner import proc

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PY = sys.executable
T = TypeVar("T")


def wait_for(
    check: Callable[[], T | None],
    what: str,
    timeout: float = 30.0,
    output: Callable[[], str] | None = None,
    interval: float = 0.05,
) -> T:
    """Poll ``check`` until it returns something truthy; on timeout fail with ``output()``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = output() if output is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail}")
        time.sleep(interval)


def alive(pids: Iterable[int]) -> list[int]:
    """The PIDs still running (zombies count as gone)."""
    return [pid for pid in pids if proc.is_alive(pid)]


def kill_session(sid: int) -> None:
    """Test cleanup: SIGKILL every process of a session (a supervisor's and its job's)."""
    for stat in proc.all_stats():
        if stat.sid == sid and not stat.is_zombie:
            with contextlib.suppress(OSError):
                os.kill(stat.pid, signal.SIGKILL)


def supervisors(*needles: str) -> list[int]:
    """PIDs of live supervisor processes whose command line holds every one of ``needles``."""
    found = []
    for stat in proc.all_stats():
        try:
            with open(f"/proc/{stat.pid}/cmdline", "rb") as handle:
                cmdline = handle.read().decode(errors="replace")
        except OSError:
            continue
        wanted = "trainmon.runner.supervisor" in cmdline and all(n in cmdline for n in needles)
        if wanted and not stat.is_zombie:
            found.append(stat.pid)
    return found


# -- a fake progress endpoint -------------------------------------------------------------


class FakeServer:
    """Answers ``POST /api/training/jobs/{id}/progress`` like trainmon and records each batch.
    ``cancel`` and ``status`` set what the answers carry; ``stop()``/``start()`` take it off
    and back on the same port to play a server that is down."""

    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []
        self.cancel = False
        self.status = "running"
        self.refuse_with: int | None = None
        self.lock = threading.Lock()
        self.port = 0
        self._httpd: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                answer: dict[str, object]
                with fake.lock:
                    if fake.refuse_with is not None:
                        code, answer = fake.refuse_with, {"error": {"code": "x", "message": "x"}}
                    else:
                        fake.batches.append(
                            {**body, "_path": self.path, "_auth": self.headers["Authorization"]}
                        )
                        if body.get("status") in ("completed", "failed", "cancelled"):
                            fake.status = body["status"]
                        code = 200
                        answer = {
                            "applied": True,
                            "cancelRequested": fake.cancel,
                            "status": fake.status,
                        }
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def final(self) -> dict[str, Any] | None:
        with self.lock:
            for batch in self.batches:
                if batch.get("status"):
                    return batch
        return None

    def progress(self) -> list[dict[str, Any]]:
        with self.lock:
            return [b for b in self.batches if "currentStep" in b or "loss" in b]


class SupervisorRun:
    """``python -m trainmon.runner.supervisor`` for one job against ``server``."""

    def __init__(
        self,
        server_url: str,
        data_dir: Path,
        argv: list[str],
        *,
        job_id: str = "job000000001",
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        grace: float = 10.0,
        token: str = "tok",
        log_cap: int | None = None,
    ) -> None:
        self.job_id = job_id
        self.data_dir = data_dir
        command = [
            PY, "-m", "trainmon.runner.supervisor", "--job-id", job_id, "--url", server_url,
            "--data-dir", str(data_dir), "--heartbeat", "0.1",
        ]  # fmt: skip
        if log_cap is not None:
            command += ["--log-cap", str(log_cap)]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        spec = {"argv": argv, "cwd": cwd, "env": env or {}, "grace": grace, "token": token}
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(spec).encode())
        self.process.stdin.close()

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / f"{self.job_id}.log"

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def output(self) -> str:
        return f"--- job log ---\n{self.log()}"

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            detail = self.output()
            raise AssertionError(f"supervisor still running after {timeout} s\n{detail}") from None

    def kill(self) -> None:
        kill_session(self.process.pid)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        if self.process.stdout is not None:
            self.process.stdout.close()


# -- a live server ------------------------------------------------------------------------


def submit(
    client: httpx.Client,
    argv: list[str],
    *,
    name: str = "test job",
    grace: float = 10.0,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    answer = client.post(
        "/api/training/jobs",
        json={
            "name": name,
            "command": {"argv": argv, "cwd": cwd, "env": env or {}},
            "graceSeconds": grace,
        },
    )
    assert answer.status_code == 201, answer.text
    job: dict[str, Any] = answer.json()
    return job


def get_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/training/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    return job


def wait_status(
    client: httpx.Client,
    job_id: str,
    statuses: Iterable[str],
    output: Callable[[], str],
    timeout: float = 60.0,
) -> dict[str, Any]:
    wanted = set(statuses)

    def check() -> dict[str, Any] | None:
        job = get_job(client, job_id)
        return job if job["status"] in wanted else None

    def describe() -> str:
        return f"job: {get_job(client, job_id)}\n{output()}"

    return wait_for(check, f"job {job_id} to be {sorted(wanted)}", timeout, describe)


def log_text(data_dir: Path, job_id: str) -> str:
    try:
        return (data_dir / "logs" / f"{job_id}.log").read_text(errors="replace")
    except OSError:
        return ""
