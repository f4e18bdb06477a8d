"""How many points one ``trainmon serve`` process stores from SDK reporters, and how long
one progress POST takes.

Starts its own server (free port, temp data dir, SQLite), then:

A. store rate: R reporter threads, each a job of its own, POST ready-made 10,000-point batches
   through the SDK's keep-alive transport; points/s = points acknowledged / wall time.
   (The batches are encoded beforehand so the figure is the server's, not the client's JSON.)
B. end to end: P processes each ``run.log`` N points through the real SDK and finish;
   points/s = all points / time until the last one is acknowledged.
C. latency: one reporter, serial 100-point and 10,000-point POSTs, p50/p99.

Reference (not this run): MLflow tracking server, same kind of machine, 1,000-point
log-batch calls: 4,900-5,900 points/s. Target: at least 100,000 points/s.

    python bench/ingest.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
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
sys.path.insert(0, str(REPO / "src"))

from trainmon.sdk.transport import HttpTransport  # noqa: E402
from trainmon.sdk.values import dumps  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``trainmon serve`` in a subprocess with its own data dir; stop() when done."""

    def __init__(self, *extra_args: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="trainmon-bench-"))
        self.data_dir = self.root / "data"
        self.data_dir.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = uuid.uuid4().hex
        self.env = {
            **os.environ,
            "TRAINMON_DATA_DIR": str(self.data_dir),
            "TRAINMON_TOKEN": self.token,
            "TRAINMON_URL": self.url,
            "PYTHONPATH": str(REPO / "src"),
        }
        self.env.pop("TRAINMON_JOB_ID", None)
        argv = [sys.executable, "-m", "trainmon.cli", "serve", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--db", f"sqlite:///{self.root / 'db.sqlite'}"]
        argv += ["--no-executor", *extra_args]
        self.log = open(self.root / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        started = time.perf_counter()
        self.proc = subprocess.Popen(argv, env=self.env, stdout=self.log, stderr=self.log)
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
        self.ready_seconds = time.perf_counter() - started

    def output(self) -> str:
        return (self.root / "server.log").read_text(errors="replace")[-4000:]

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def create_job(transport: HttpTransport, name: str) -> str:
    job_id = uuid.uuid4().hex[:12]
    answer = transport("POST", "/api/training/jobs", dumps({"id": job_id, "name": name}))
    assert answer.status in (200, 201), answer
    return job_id


def batch_body(reporter: str, seq: int, first_step: int, size: int) -> bytes:
    now = time.time()
    points = [
        {"step": s, "time": now + s * 1e-3, "loss": 1.0 / (s + 1), "metrics": {"lr": 3e-4}}
        for s in range(first_step, first_step + size)
    ]
    return dumps({"reporter": reporter, "seq": seq, "points": points, "source": "sdk"})


def store_rate(server: Server, reporters: int, batches: int, size: int) -> dict[str, Any]:
    """Phase A: threads POSTing pre-encoded batches, one job per reporter."""
    plans: list[tuple[HttpTransport, str, list[bytes]]] = []
    for r in range(reporters):
        transport = HttpTransport(server.url, server.token, timeout=120)
        job_id = create_job(transport, f"ingest-{r}")
        reporter = f"sdk-bench{r}"
        bodies = [batch_body(reporter, i + 1, i * size, size) for i in range(batches)]
        plans.append((transport, job_id, bodies))
    latencies: list[float] = []
    stored = [0]
    errors: list[str] = []
    lock = threading.Lock()

    def report(transport: HttpTransport, job_id: str, bodies: list[bytes]) -> None:
        path = f"/api/training/jobs/{job_id}/progress"
        for body in bodies:
            t0 = time.perf_counter()
            answer = transport("POST", path, body)
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                if answer.status == 200 and json.loads(answer.body)["applied"]:
                    stored[0] += size
                else:
                    errors.append(f"{answer.status} {answer.body[:200]!r}")

    threads = [threading.Thread(target=report, args=plan) for plan in plans]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    for transport, _, _ in plans:
        transport.close()
    return {"points": stored[0], "wall": wall, "latencies": latencies, "errors": errors}


REPORTER_SCRIPT = """
import sys, time, trainmon
n = int(sys.argv[1])
with trainmon.init(name="ingest-sdk", total_steps=n) as run:
    for i in range(n):
        run.log(step=i, loss=1.0 / (i + 1), lr=3e-4)
"""


def end_to_end(server: Server, processes: int, points: int) -> dict[str, Any]:
    """Phase B: real SDK processes; time until every one has finished (all acknowledged)."""
    env = {**server.env, "TRAINMON_EXIT_TIMEOUT": "300"}
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REPORTER_SCRIPT, str(points)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    wall = time.perf_counter() - started
    problems = [err.decode() for _, err in outputs if err.strip()]
    return {"points": processes * points, "wall": wall, "problems": problems}


def latency(server: Server, size: int, count: int) -> list[float]:
    transport = HttpTransport(server.url, server.token, timeout=120)
    job_id = create_job(transport, f"latency-{size}")
    path = f"/api/training/jobs/{job_id}/progress"
    bodies = [batch_body("sdk-lat", i + 1, i * size, size) for i in range(count)]
    samples = []
    for body in bodies:
        t0 = time.perf_counter()
        answer = transport("POST", path, body)
        samples.append(time.perf_counter() - t0)
        assert answer.status == 200, answer
    transport.close()
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (~20 s)")
    args = parser.parse_args()
    scale = 0.25 if args.quick else 1.0

    server = Server()
    try:
        print(f"trainmon serve ready in {server.ready_seconds * 1000:.0f} ms; "
              f"idle RSS {server.rss_mb():.0f} MB")  # fmt: skip
        reporters, size = 4, 10_000
        batches = max(2, int(15 * scale))
        a = store_rate(server, reporters, batches, size)
        rate_a = a["points"] / a["wall"]
        print(f"\nA. store rate, {reporters} reporters x {batches} batches x {size:,} points "
              "(pre-encoded):")  # fmt: skip
        print(f"   {a['points']:,} points in {a['wall']:.2f} s = {rate_a:,.0f} points/s "
              f"(target >= 100,000; MLflow reference 5,400: {rate_a / 5400:.1f}x)")  # fmt: skip
        print(f"   per POST of {size:,} points under load: p50 {pct(a['latencies'], 0.5):.0f} ms, "
              f"p99 {pct(a['latencies'], 0.99):.0f} ms")  # fmt: skip
        if a["errors"]:
            print(f"   ERRORS: {len(a['errors'])}, first: {a['errors'][0]}")

        procs, per = 2, int(200_000 * scale)
        b = end_to_end(server, procs, per)
        print(
            f"\nB. end to end, {procs} SDK processes x {per:,} run.log points, until acknowledged:"
        )
        print(
            f"   {b['points']:,} points in {b['wall']:.2f} s = {b['points'] / b['wall']:,.0f} "
            "points/s (includes the clients' own JSON encoding on the same 2 cores)"
        )
        for problem in b["problems"]:
            print(f"   stderr: {problem.strip()[:300]}")

        print("\nC. one progress POST, serial, one reporter:")
        for size_c, count in ((1, int(400 * scale)), (100, int(400 * scale)),
                              (10_000, max(5, int(30 * scale)))):  # fmt: skip
            samples = latency(server, size_c, count)
            print(f"   {size_c:>6,} points: p50 {pct(samples, 0.5):7.2f} ms  "
                  f"p99 {pct(samples, 0.99):7.2f} ms  ({count} POSTs; "
                  f"{size_c / statistics.median(samples):,.0f} points/s)")  # fmt: skip
        print("   reference (not this run), MLflow 1 point/call: p50 13 ms, p99 19-27 ms")
        print(f"\nserver RSS after the runs: {server.rss_mb():.0f} MB")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
