"""Shared pieces of the SDK tests: an in-memory fake server as a transport, a fake clock, and
for the reliability tests a training script in a subprocess plus small HTTP helpers (the real
server is ``tests/live.py``'s ``LiveServer``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainmon.sdk.transport import Response, TransportError

REPO = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeServer:
    """Answers like the real API: idempotent create, (reporter, seq) applied once."""

    token: str = "secret"
    down: bool = False
    cancel: bool = False
    status_override: int | None = None  # answer every request with this status
    lose_answer_once: bool = False  # store the batch, then "drop the connection"
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    points: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seen: set[tuple[str, str, int]] = field(default_factory=set)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def transport(self, token: str | None = "secret") -> Callable[..., Response]:
        def send(method: str, path: str, body: bytes | None = None) -> Response:
            return self.handle(method, path, body, token)

        return send

    def handle(self, method: str, path: str, body: bytes | None, token: str | None) -> Response:
        if self.down:
            raise TransportError("ConnectionRefusedError: [Errno 111] Connection refused")
        text = (body or b"{}").decode()
        assert "NaN" not in text.replace('"NaN"', ""), "bare NaN literal on the wire"
        assert "Infinity" not in text.replace('"Infinity"', "").replace('"-Infinity"', "")
        data = json.loads(text)
        self.requests.append((path, data))
        if self.status_override is not None:
            return _json(self.status_override, {"error": {"code": "x", "message": "refused"}})
        if token != self.token:
            return _json(401, {"error": {"code": "unauthorized", "message": "bad token"}})
        if path == "/api/training/jobs":
            created = data["id"] not in self.jobs
            self.jobs.setdefault(data["id"], {**data, "status": "pending"})
            return _json(201 if created else 200, self.jobs[data["id"]])
        job_id = path.split("/")[4]
        if job_id not in self.jobs:
            return _json(404, {"error": {"code": "not_found", "message": "no such job"}})
        key = (job_id, data["reporter"], data["seq"])
        applied = key not in self.seen
        if applied:
            self.seen.add(key)
            self.points.setdefault(job_id, []).extend(data["points"])
            job = self.jobs[job_id]
            if data.get("status") and job["status"] not in ("completed", "failed", "cancelled"):
                job["status"] = data["status"]
                job["error"] = data.get("error")
        if self.lose_answer_once:
            self.lose_answer_once = False
            raise TransportError("RemoteDisconnected: lost the answer")
        reply = {"applied": applied, "cancelRequested": self.cancel, "status": "running"}
        return _json(200, reply)

    def steps(self, job_id: str) -> list[int]:
        return [p["step"] for p in self.points.get(job_id, [])]


def _json(status: int, body: object) -> Response:
    return Response(status, json.dumps(body).encode())


# -- real processes -------------------------------------------------------------------------


class Child:
    """A training script in a subprocess; its output collected by threads, never lost."""

    def __init__(self, script: str, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._pumps = [
            threading.Thread(target=_pump, args=(stream, sink), daemon=True)
            for stream, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))
        ]
        for pump in self._pumps:
            pump.start()

    def close(self) -> None:
        """Kill if still running and close every pipe (warnings are errors in this suite)."""
        self.kill()
        for pump in self._pumps:
            pump.join(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def output(self) -> str:
        return (
            f"exit code: {self.proc.poll()}\n--- stdout:\n{''.join(self.stdout)[-4000:]}"
            f"\n--- stderr:\n{''.join(self.stderr)[-6000:]}"
        )

    def line_starting(self, prefix: str) -> str | None:
        return next((line for line in list(self.stdout) if line.startswith(prefix)), None)

    def say(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"script did not exit in {timeout} s\n{self.output()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def _pump(stream: Any, sink: list[str]) -> None:
    for line in stream:
        sink.append(line)


def stop_server(server: Any) -> None:
    """Stop a ``LiveServer`` and close its captured-output file."""
    server.close()


def wait_for(
    predicate: Callable[[], object], timeout: float, what: str, output: Callable[[], str]
) -> None:
    """Poll ``predicate`` until true; fail with the captured output of whoever did not answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass  # a server between a kill and its restart
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{output()}")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def post_json(url: str, token: str, body: object = None) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body or {}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read() or b"{}")


def history_steps(url: str, job_id: str) -> list[int]:
    """Every stored point's step, paginating ``/metrics`` with limit/after."""
    steps: list[int] = []
    after: int | None = None
    while True:
        query = "limit=50000" + (f"&after={after}" if after is not None else "")
        page = get_json(f"{url}/api/training/jobs/{job_id}/metrics?{query}")
        steps.extend(point["step"] for point in page["points"])
        after = page.get("nextAfter")
        if after is None or not page["points"]:
            return steps


def job(url: str, job_id: str) -> dict[str, Any]:
    found: dict[str, Any] = get_json(f"{url}/api/training/jobs/{job_id}")
    return found


def client_env(server: Any, **extra: str) -> dict[str, str]:
    """The environment of a training script reporting to ``server`` (a tests.live.LiveServer)."""
    env = dict(server.env)
    env.pop("TRAINMON_JOB_ID", None)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def dead_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"
