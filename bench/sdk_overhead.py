"""What ``run.log(step=i, loss=x)`` costs a training loop, against its peers, in one run.

Per subject: 5 rounds (interleaved, so drift hits everyone alike) of 200,000 calls, timed in
chunks of 1,000 calls. "median" is the median chunk's ns/call (what the loop sees most of
the time); "cpu" is the process's CPU time per call, all threads, which for trainmon also
charges the flusher thread's batching and JSON encoding (it shares the GIL). Ratios are
against tqdm's ``update(1)`` in this same run; the spread is the min-max of round medians.

Also: ``import trainmon`` time against wandb/mlflow (when installed), and the memory a
process pays for 1,000,000 points logged while the server is down (spilled to the journal).

    python bench/sdk_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import REPO, Server, free_port

sys.path.insert(0, str(REPO / "src"))

CHUNK = 1_000
# Recorded on this kind of machine on 2026-11-29 (docs/PERFORMANCE.md); not measured here.
REFERENCE_NS = {
    "list.append": 157,
    "tqdm update(1)": 288,
    "rich Progress.update": 1_959,
    "aim Run.track": 248_000,
    "wandb offline run.log": 402_000,
    "mlflow sync log_metric (SQLite)": 7_000_000,
}

Loop = Callable[[int], None]  # runs n calls
SETTLE: dict[str, Callable[[], None]] = {}


def subjects(server: Server) -> dict[str, Loop]:
    found: dict[str, Loop] = {}

    def empty(n: int) -> None:
        for _ in range(n):
            pass

    found["empty loop"] = empty
    sink: list[tuple[int, float]] = []

    def append(n: int) -> None:
        add = sink.append
        for i in range(n):
            add((i, 0.5))
        sink.clear()

    found["list.append"] = append
    try:
        from tqdm import tqdm

        bar = tqdm(total=10**12, file=io.StringIO(), mininterval=0.1)

        def tqdm_update(n: int) -> None:
            update = bar.update
            for _ in range(n):
                update(1)

        found["tqdm update(1)"] = tqdm_update
    except ImportError:
        pass
    try:
        from rich.console import Console
        from rich.progress import Progress

        progress = Progress(console=Console(file=io.StringIO()), auto_refresh=False)
        task = progress.add_task("x", total=None)

        def rich_update(n: int) -> None:
            update = progress.update
            for _ in range(n):
                update(task, advance=1)

        found["rich Progress.update"] = rich_update
    except ImportError:
        pass

    import trainmon

    run = trainmon.init("bench-sdk-overhead", url=server.url, token=server.token)

    def trainmon_log(n: int) -> None:
        log = run.log
        for i in range(n):
            log(step=i, loss=0.5)

    found["trainmon run.log"] = trainmon_log

    def trainmon_log_lr(n: int) -> None:
        log = run.log
        for i in range(n):
            log(step=i, loss=0.5, lr=3e-4)

    found["trainmon run.log(+lr)"] = trainmon_log_lr

    def settle() -> None:
        deadline = time.monotonic() + 120
        while (run._buffer or run._flusher._mem) and time.monotonic() < deadline:
            time.sleep(0.005)  # the flusher is encoding/sending what was logged

    SETTLE.update({"trainmon run.log": settle, "trainmon run.log(+lr)": settle})
    found.update(peers())
    return found


def peers() -> dict[str, Loop]:
    """wandb/mlflow/aim when installed; never installed by this script."""
    found: dict[str, Loop] = {}
    tmp = tempfile.mkdtemp(prefix="trainmon-peers-")
    try:
        import wandb

        wrun = wandb.init(mode="offline", dir=tmp, project="bench")

        def wandb_log(n: int) -> None:
            for i in range(n):
                wrun.log({"loss": 0.5}, step=i)

        found["wandb offline run.log"] = wandb_log
    except ImportError:
        pass
    try:
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        mlflow.start_run()

        def mlflow_log(n: int) -> None:
            for i in range(n):
                mlflow.log_metric("loss", 0.5, step=i)

        found["mlflow sync log_metric (SQLite)"] = mlflow_log
    except ImportError:
        pass
    try:
        import aim

        arun = aim.Run(repo=tmp)

        def aim_track(n: int) -> None:
            for i in range(n):
                arun.track(0.5, name="loss", step=i)

        found["aim Run.track"] = aim_track
    except ImportError:
        pass
    return found


def measure(loop: Loop, calls: int, settle: Callable[[], None] | None) -> tuple[float, float]:
    """(median chunk ns/call, process CPU ns/call) over ``calls`` calls.

    The CPU figure counts every thread of this process, and for trainmon waits (``settle``)
    until the flusher has encoded every point, so background work is charged to its caller.
    """
    chunks = []
    clock = time.perf_counter_ns
    cpu = time.process_time_ns()
    for _ in range(max(1, calls // CHUNK)):
        t0 = clock()
        loop(CHUNK)
        chunks.append((clock() - t0) / CHUNK)
    if settle is not None:
        settle()
    return statistics.median(chunks), (time.process_time_ns() - cpu) / max(CHUNK, calls)


def import_ms(module: str, repeats: int = 5) -> float | None:
    """Median cumulative import time reported by ``-X importtime``."""
    times = []
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            env=env,
        )
        if done.returncode != 0:
            return None
        for line in done.stderr.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2] == module:
                times.append(int(parts[1]) / 1000)
    return statistics.median(times) if times else None


def step_work() -> float:
    """A stand-in for a small training step: ~50 us of pure-Python arithmetic."""
    return sum(i * 0.5 for i in range(800))


def real_loop(run: object, steps: int) -> tuple[float, float]:
    """Wall seconds of ``steps`` steps bare, then with ``run.log`` each step (the flusher's
    work, which shares the GIL, lands in the second figure)."""
    began = time.perf_counter()
    for _ in range(steps):
        step_work()
    bare = time.perf_counter() - began
    log = run.log  # type: ignore[attr-defined]
    began = time.perf_counter()
    for i in range(steps):
        log(step=i, loss=step_work())
    logged = time.perf_counter() - began
    return bare, logged


MEMORY_CHILD = """
import os, sys, time
import trainmon

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return float("nan")

n = int(sys.argv[1])
run = trainmon.init("bench-memory-down", url=sys.argv[2], token="t")
x = 0.5
for i in range(1000):
    run.log(step=i, loss=x)
deadline = time.monotonic() + 60
while run._buffer and time.monotonic() < deadline:
    time.sleep(0.01)  # the flusher has taken the warm-up points
base, base_peak = status("VmRSS"), status("VmHWM")
t0 = time.perf_counter()
for i in range(1000, 1000 + n):
    run.log(step=i, loss=x)
logging = time.perf_counter() - t0
while run._buffer and time.monotonic() < deadline:
    time.sleep(0.01)  # let the flusher move the backlog to disk
after, peak = status("VmRSS"), status("VmHWM")
t1 = time.perf_counter()
run.finish()
print(f"{base:.1f} {after:.1f} {peak:.1f} {logging:.3f} {time.perf_counter() - t1:.2f}")
"""


def memory_while_down(points: int) -> str:
    data = tempfile.mkdtemp(prefix="trainmon-down-")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "TRAINMON_DATA_DIR": data,
        "TRAINMON_EXIT_TIMEOUT": "1",
    }
    env.pop("TRAINMON_JOB_ID", None)
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(points), dead],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if done.returncode != 0:
        return f"failed: {done.stderr[-2000:]}"
    base, after, peak, logging, finish = (float(x) for x in done.stdout.split())
    journal = sum(p.stat().st_size for p in Path(data, "journal").glob("*.jsonl"))
    warning = [line for line in done.stderr.splitlines() if "trainmon sync" in line]
    return (
        f"RSS {base:.0f} MB -> {after:.0f} MB after {points:,} points "
        f"(growth {after - base:+.1f} MB; peak {peak - base:+.1f} MB over the start; "
        f"target < 50 MB)\n   logging took {logging:.2f} s ({logging / points * 1e9:.0f} ns/point "
        f"incl. spilling), finish {finish:.2f} s, journal {journal / 2**20:.0f} MB on disk\n"
        f"   exit warning: {warning[0] if warning else '(none)'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    calls = 50_000 if args.quick else 200_000
    rounds = 3 if args.quick else 5

    server = Server()
    os.environ["TRAINMON_DATA_DIR"] = str(server.data_dir)
    # ~2M points are logged here, faster than one server stores them; do not wait for the
    # backlog at the end (the SDK says what it left in the temp dir's journal).
    os.environ["TRAINMON_EXIT_TIMEOUT"] = "1"
    try:
        loops = subjects(server)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in loops}
        slow = {n for n in loops if n.startswith(("wandb", "mlflow", "aim"))}
        for _ in range(rounds):
            for name, loop in loops.items():
                count = 2_000 if name in slow else calls
                results[name].append(measure(loop, count, SETTLE.get(name)))
        import trainmon

        trainmon.finish()
        steps = 10_000 if args.quick else 20_000
        loop_run = trainmon.init("bench-real-loop", url=server.url, token=server.token)
        bare, logged = real_loop(loop_run, steps)
        loop_run.finish()
    finally:
        server.stop()

    medians = {n: statistics.median(m for m, _ in r) for n, r in results.items()}
    means = {n: statistics.median(a for _, a in r) for n, r in results.items()}
    floor = medians["list.append"]
    tq = medians.get("tqdm update(1)")
    print(f"ns per call, {rounds} rounds x {calls:,} calls, chunks of {CHUNK:,} "
          "(server running, flushing for real)")  # fmt: skip
    print(f"{'subject':34} {'median':>9} {'min-max':>17} {'cpu':>9} {'/append':>8} {'/tqdm':>7}")
    for name in loops:
        per_round = [m for m, _ in results[name]]
        spread = f"{min(per_round):,.0f}-{max(per_round):,.0f}"
        vs_tqdm = f"{medians[name] / tq:.2f}x" if tq else "-"
        print(f"{name:34} {medians[name]:9,.0f} {spread:>17} {means[name]:9,.0f} "
              f"{medians[name] / floor:7.2f}x {vs_tqdm:>7}")  # fmt: skip
    if tq:
        ratio = medians["trainmon run.log"] / tq
        amortized = means["trainmon run.log"] / means["tqdm update(1)"]
        floor_cpu = means["trainmon run.log"] / means["list.append"]
        verdict = "met" if ratio <= 1.5 else "NOT met"
        cpu_verdict = "met" if amortized <= 2 else "NOT met"
        print(f"\ntarget run.log <= 1.5x tqdm update(1): median {ratio:.2f}x -> {verdict}")
        print(f"target CPU per logged point, flusher included, <= 2x tqdm: {amortized:.2f}x -> "
              f"{cpu_verdict} ({floor_cpu:.1f}x list.append)")  # fmt: skip
    print(f"\na real loop of {steps:,} steps of ~50 us each: {bare:.2f} s bare, {logged:.2f} s "
          f"logging every step ({100 * (logged / bare - 1):+.1f} % wall time)")  # fmt: skip
    print("\nreference (not this run), median ns/call on 2026-11-29:")
    for name, ns in REFERENCE_NS.items():
        mark = "" if name in loops else "   (not installed)"
        print(f"  {name:34} {ns:>11,}{mark}")

    print("\nimport time (-X importtime, cumulative, median of 5):")
    for module in ("trainmon", "wandb", "mlflow"):
        ms = import_ms(module)
        print(f"  import {module:10} " + (f"{ms:8.1f} ms" if ms is not None else "not installed"))

    points = 200_000 if args.quick else 1_000_000
    print(f"\nmemory for {points:,} points logged while the server is down:")
    print("   " + memory_while_down(points))


if __name__ == "__main__":
    main()
