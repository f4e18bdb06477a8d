"""Time from `trainmon serve` start to its first /healthz answer, and its RSS once idle.

Every start is a new process on a fresh temp data dir (a new SQLite database to create and
migrate). "Cold" also empties the kernel's page cache first (`echo 3 >
/proc/sys/vm/drop_caches`, which needs root; the bench says when it could not), so every
library is read from disk as on a machine that just booted; "warm" starts right after another.

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
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def drop_page_cache() -> bool:
    """Empty the page cache so the next start reads every file from disk; False if not
    allowed (not root, or a container that forbids it)."""
    os.sync()
    try:
        DROP_CACHES.write_text("3\n")
    except OSError:
        return False
    return True


def one_start(*, cold: bool) -> tuple[float, float, bool]:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "TRAINMON_DATA_DIR": tmp}
        env.pop("TRAINMON_TOKEN", None)
        dropped = drop_page_cache() if cold else False
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
            return ready, rss_mb(proc.pid), dropped
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


def row(label: str, values: list[float], peer: float, fmt: str) -> str:
    mid = statistics.median(values)
    spread = f"(min {min(values):{fmt}}, max {max(values):{fmt}})"
    return f"{label:28}{mid:>14{fmt}}{peer:>16{fmt}}{peer / mid:>9.0f}x   {spread}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    load = os.getloadavg()
    cold = [one_start(cold=True) for _ in range(args.repeats)]
    warm = [one_start(cold=False) for _ in range(args.repeats)]
    dropped = all(d for _, _, d in cold)
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs")
    if not dropped:
        print("note: could not drop the page cache (needs root): the cold row is warm too")
    print("MLflow's figures: reference, measured on this kind of machine on 2026-11-29 (not run)")
    print(f"{'':28}{'trainmon':>14}{'mlflow (ref)':>16}{'ratio':>10}")
    print(row("ready, cold (s)", [r for r, _, _ in cold], MLFLOW_READY_S, ".2f"))
    print(row("ready, warm (s)", [r for r, _, _ in warm], MLFLOW_READY_S, ".2f"))
    print(row("idle RSS (MB)", [m for _, m, _ in warm], MLFLOW_IDLE_MB, ".1f"))
    print("targets: ready < 1 s cold, idle < 100 MB")


if __name__ == "__main__":
    main()
