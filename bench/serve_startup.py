"""Time from `trainmon serve` start to its first /healthz answer, and its RSS once idle.

Prints our figures beside MLflow's tracking server measured on this kind of machine
(docs: shared/docs/PERFORMANCE.md); MLflow is not installed here, so its row is a reference.
Usage: python bench/serve_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

MLFLOW_READY_S = 13.0
MLFLOW_IDLE_MB = 1.77 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_start() -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "TRAINMON_DATA_DIR": tmp}
        began = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "trainmon.cli", "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                        break
                except httpx.HTTPError:
                    time.sleep(0.01)
                if proc.poll() is not None:
                    raise SystemExit(f"server exited with {proc.returncode}")
            ready = time.perf_counter() - began
            time.sleep(3)  # settle: a health check can answer before the process is idle
            return ready, rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    runs = [one_start() for _ in range(args.repeats)]
    ready = [r for r, _ in runs]
    rss = [m for _, m in runs]
    print(f"{'':28}{'trainmon':>14}{'mlflow (ref)':>16}{'ratio':>10}")
    med_ready, med_rss = statistics.median(ready), statistics.median(rss)
    print(
        f"{'ready to answer (s)':28}{med_ready:>14.2f}{MLFLOW_READY_S:>16.1f}"
        f"{MLFLOW_READY_S / med_ready:>9.0f}x   (min {min(ready):.2f}, max {max(ready):.2f})"
    )
    print(
        f"{'idle RSS (MB)':28}{med_rss:>14.1f}{MLFLOW_IDLE_MB:>16.0f}"
        f"{MLFLOW_IDLE_MB / med_rss:>9.0f}x   (min {min(rss):.1f}, max {max(rss):.1f})"
    )
    print("targets: ready < 1 s, idle < 100 MB")


if __name__ == "__main__":
    main()
