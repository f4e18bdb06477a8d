"""Hostile load (issue 9, items 7 and 10): what one careless or hostile client costs everyone.

Each part starts a cold ``trainmon serve`` (free port, fresh temp data dir, SQLite):

7. sparse metric keys: one POST of 6,000 points, each with its own metric key (server run with
   ``--max-metric-keys 10000`` so the batch is taken); meanwhile a second job POSTs one-point
   reports back to back on a keep-alive connection. Measured: seconds to ingest, database
   growth (file + WAL), server RSS growth (peak), the second job's worst report latency (the
   stall), and the time to read 10 points back. With default settings, the same batch is
   refused (422: 1,000 keys per job).
10. idle clients: 500 sockets connected and silent, then ``/healthz`` 50 times on fresh
    connections: p50 and max latency.

The "before" column is the issue's measurement of the previous release, not this run.

    python bench/hostile.py
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
POINTS = 6_000
IDLE_SOCKETS = 500
IDLE = f"{IDLE_SOCKETS} idle sockets"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``trainmon serve`` in a subprocess with its own data dir; stop() when done."""

    def __init__(self, *extra_args: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="trainmon-hostile-"))
        self.db = self.root / "db.sqlite"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = uuid.uuid4().hex
        env = {
            **os.environ,
            "TRAINMON_DATA_DIR": str(self.root / "data"),
            "TRAINMON_TOKEN": self.token,
            "PYTHONPATH": str(REPO / "src"),
        }
        argv = [sys.executable, "-m", "trainmon.cli", "serve", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--db", f"sqlite:///{self.db}", "--no-executor"]
        self.log = open(self.root / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*argv, *extra_args], env=env, stdout=self.log, stderr=self.log
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"server did not start:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.02)  # readiness poll with a deadline

    def output(self) -> str:
        return (self.root / "server.log").read_text(errors="replace")[-4000:]

    def status_kb(self, field: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def db_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("db.sqlite*"))

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)

    def call(
        self, conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def sparse_body(seq: int) -> bytes:
    now = time.time()
    points = [{"step": i, "time": now, "metrics": {f"key_{i}": i * 0.5}} for i in range(POINTS)]
    return json.dumps({"seq": seq, "points": points}).encode()


def create_job(server: Server, conn: http.client.HTTPConnection, name: str) -> str:
    status, job = server.call(
        conn, "POST", "/api/training/jobs", json.dumps({"name": name}).encode()
    )
    assert status == 201, job
    return str(job["id"])


def sparse_keys() -> dict[str, Any]:
    server = Server("--max-metric-keys", "10000")
    try:
        conn = server.connection()
        big, small = create_job(server, conn, "sparse"), create_job(server, conn, "neighbour")
        body = sparse_body(1)
        seq = 0

        def small_report() -> float:
            nonlocal seq
            seq += 1
            point = json.dumps({"seq": seq, "points": [{"step": seq, "loss": 1.0}]}).encode()
            began = time.perf_counter()
            status, answer = server.call(
                conn, "POST", f"/api/training/jobs/{small}/progress", point
            )
            assert status == 200, answer
            return time.perf_counter() - began

        quiet = [small_report() for _ in range(50)]
        db_before, rss_before = server.db_bytes(), server.status_kb("VmRSS")
        outcome: dict[str, Any] = {}

        def send_big() -> None:
            other = server.connection()
            began = time.perf_counter()
            outcome["status"], outcome["answer"] = server.call(
                other, "POST", f"/api/training/jobs/{big}/progress", body
            )
            outcome["seconds"] = time.perf_counter() - began

        sender = threading.Thread(target=send_big)
        sender.start()
        during = [small_report()]
        while sender.is_alive():
            during.append(small_report())
        sender.join()
        assert outcome["status"] == 200, outcome["answer"]
        db_growth = server.db_bytes() - db_before
        rss_growth = server.status_kb("VmHWM") - rss_before
        began = time.perf_counter()
        status, page = server.call(
            conn, "GET", f"/api/training/jobs/{big}/metrics?after=3000&limit=10"
        )
        read = time.perf_counter() - began
        assert status == 200 and len(page["points"]) == 10, page
        return {
            "ingest": outcome["seconds"],
            "db_mb": db_growth / 1e6,
            "rss_mb": rss_growth / 1024,
            "stall": max(during),
            "quiet_p50": statistics.median(quiet),
            "reports_during": len(during),
            "read": read,
            "body_mb": len(body) / 1e6,
        }
    finally:
        server.stop()


def idle_sockets() -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4_096)), hard))
    server = Server()  # default limits
    idle: list[socket.socket] = []
    try:
        conn = server.connection()
        job = create_job(server, conn, "refused")
        began = time.perf_counter()
        status, answer = server.call(
            conn, "POST", f"/api/training/jobs/{job}/progress", sparse_body(1)
        )
        refused = (status, time.perf_counter() - began, answer["error"]["message"])
        conn.close()
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(IDLE_SOCKETS)]
        # A round trip on the last one: all of them have been accepted and are held open.
        idle[-1].sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert idle[-1].recv(100).startswith(b"HTTP/1.1 200")
        latencies = []
        for _ in range(50):
            began = time.perf_counter()
            with urllib.request.urlopen(server.url + "/healthz", timeout=30) as response:
                assert response.status == 200
            latencies.append(time.perf_counter() - began)
        return {
            "p50": statistics.median(latencies),
            "max": max(latencies),
            "refused": refused,
        }
    finally:
        for sock in idle:
            sock.close()
        server.stop()


def main() -> None:
    load_before = os.getloadavg()
    seven = sparse_keys()
    ten = idle_sockets()
    rows = [
        ("7. ingest 6,000 sparse-key batch (s)", "32.9", f"{seven['ingest']:.3f}", "< 0.5"),
        ("7. database growth (MB)", "317", f"{seven['db_mb']:.2f}", "< 5"),
        ("7. server RSS growth, peak (MB)", "500", f"{seven['rss_mb']:.1f}", ""),
        ("7. other job's worst report (ms)", "12000", f"{seven['stall'] * 1000:.1f}", "< 50"),
        ("7. read 10 points back (s)", "48.8", f"{seven['read']:.3f}", ""),
        (f"10. /healthz p50, {IDLE} (ms)", "hangs*", f"{ten['p50'] * 1000:.1f}", "< 1000"),
        (f"10. /healthz max, {IDLE} (ms)", "hangs*", f"{ten['max'] * 1000:.1f}", "< 1000"),
    ]  # fmt: skip
    print(f"{'':46}{'before, from the issue':>24}{'now':>12}{'target':>10}")
    for name, before, now, target in rows:
        print(f"{name:46}{before:>24}{now:>12}{target:>10}")
    print("* before: 256 idle sockets (ulimit -n 256) stopped the server for everyone")
    print(
        f"\n7. body {seven['body_mb']:.2f} MB; the neighbour job sent {seven['reports_during']} "
        f"reports during the batch (quiet p50 {seven['quiet_p50'] * 1000:.1f} ms)"
    )
    status, seconds, message = ten["refused"]
    print(f"7. same batch at default settings: {status} in {seconds * 1000:.0f} ms: {message}")
    load_after = os.getloadavg()
    print(
        f"load average (1/5/15 min): before {' '.join(f'{x:.2f}' for x in load_before)}, "
        f"after {' '.join(f'{x:.2f}' for x in load_after)} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
