"""A thousand trainings at once: many small reports and live viewers against one server
process (issue 17).

For each backend (SQLite, PostgreSQL), number of reporters N and number of viewers, a cold
``trainmon serve --no-executor`` on a fresh database is driven for ``--seconds``:

- reporters: N jobs, each sending a 5-point batch every 0.5 s (the SDK's default flush of a loop
  at 10 steps/s) on a keep-alive connection of its own. ``--mode raw`` drives them from one
  asyncio process (cheap enough for N = 1,000 on a 2-core machine); ``--mode sdk`` runs N real
  SDK processes instead (``run.log`` 10 times a second). A 503 is waited out (Retry-After) and
  the same batch sent again, as the SDK does: its points are "delayed", never dropped.
- viewers: SSE connections to ``/api/training/events``; the lag of a report is the time from
  sending it to a viewer seeing its step.

It prints POST/s accepted, accept latency p50/p99, server CPU per POST, viewer lag p50/p99,
points lost (answered 2xx but not stored; must be 0) and points delayed by back-pressure.
MLflow is not installed here, so its ``log_batch`` rate at the same N is not printed.

    python bench/fleet.py [--sizes 100,500,1000] [--viewers 1,20] [--backends sqlite,postgres]
                          [--seconds 15] [--mode raw|sdk]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from servers import cpu_seconds, database, server
from sqlalchemy import create_engine, text

TOKEN = "fleet-bench-token-0123456789"
FLUSH_SECONDS = 0.5
SENT = re.compile(rb'"sent":([0-9.e+]+)')
POINTS_PER_BATCH = 5
SERVER_ARGS = ("--max-connections", "3000", "--max-event-streams", "200")

SDK_SCRIPT = """
import sys, time, trainmon
run = trainmon.init(sys.argv[1])
end = time.monotonic() + float(sys.argv[2])
step = 0
while time.monotonic() < end:
    run.log(step=step, loss=1.0 / (step + 1))
    step += 1
    time.sleep(0.1)
run.finish()
print(run.id, step, flush=True)
"""


@dataclass
class Tally:
    accepted: int = 0
    busy: int = 0
    latencies: list[float] = field(default_factory=list)
    points_acked: int = 0
    points_delayed: int = 0
    lags: list[float] = field(default_factory=list)
    window: float = 0.0  # seconds the reporters ran
    cpu: float = 0.0  # server CPU seconds meanwhile


async def http_post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes
) -> tuple[int, dict[str, str]]:
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
    await reader.readexactly(int(headers.get("content-length", "0")))
    return int(head[0].split()[1]), headers


async def reporter(port: int, job_id: str, until: float, tally: Tally, offset: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(offset)  # spread the reporters over the flush interval
    seq, step = 0, 0
    try:
        while time.monotonic() < until:
            began = time.monotonic()
            seq += 1
            points = [{"step": step + i, "loss": 0.5} for i in range(POINTS_PER_BATCH)]
            step += POINTS_PER_BATCH
            points[-1]["metrics"] = {"sent": time.time()}  # the viewers' clock for the lag
            body = json.dumps({"seq": seq, "points": points, "currentStep": step}).encode()
            delayed = False
            while True:
                sent = time.monotonic()
                status, headers = await http_post(
                    reader, writer, f"/api/training/jobs/{job_id}/progress", body
                )
                if status != 503:
                    break
                tally.busy += 1
                delayed = True
                await asyncio.sleep(float(headers.get("retry-after", "1")))
            tally.latencies.append(time.monotonic() - sent)
            if status == 200:
                tally.accepted += 1
                tally.points_acked += POINTS_PER_BATCH
                tally.points_delayed += POINTS_PER_BATCH if delayed else 0
            await asyncio.sleep(max(0.0, began + FLUSH_SECONDS - time.monotonic()))
    finally:
        writer.close()


async def viewer(port: int, until: float, lags: list[float]) -> None:
    """One live viewer. A report carries its send time as a metric ("sent"), which the job's
    event repeats, so the lag is read from the event alone. Bulk reads and a regex over them:
    parsing 40,000 events a second (20 viewers) as JSON would make the viewers the bottleneck,
    not the server."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/training/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    tail = b""
    try:
        while time.monotonic() < until:
            try:
                chunk = await asyncio.wait_for(reader.read(1 << 16), timeout=1)
            except TimeoutError:
                continue
            if not chunk:
                return
            data = tail + chunk
            cut = data.rfind(b"\n") + 1
            now = time.time()
            lags += [now - float(m[1]) for m in SENT.finditer(data, 0, cut)]
            tail = data[cut:]
    finally:
        writer.close()


def watch(port: int, viewers: int, seconds: float, out: multiprocessing.Queue[list[float]]) -> None:
    """The viewers, in a process of their own (they must not slow the reporters, nor be)."""
    lags: list[float] = []

    async def all_viewers() -> None:
        until = time.monotonic() + seconds
        await asyncio.gather(*(viewer(port, until, lags) for _ in range(viewers)))

    asyncio.run(all_viewers())
    out.put(lags)


async def drive_raw(
    base: str, port: int, pid: int, reporters: int, viewers: int, seconds: float
) -> Tally:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        jobs = []
        for i in range(reporters):
            made = await c.post("/api/training/jobs", json={"name": f"fleet-{i}"})
            jobs.append(made.json()["id"])
    tally = Tally()
    lags: multiprocessing.Queue[list[float]] = multiprocessing.Queue()
    watching = multiprocessing.Process(target=watch, args=(port, viewers, seconds + 3, lags))
    watching.start()
    await asyncio.sleep(1.0)  # the viewers are connected and have their snapshots
    before, began = cpu_seconds(pid), time.monotonic()
    until = began + seconds
    await asyncio.gather(
        *(
            reporter(port, job, until, tally, FLUSH_SECONDS * i / reporters)
            for i, job in enumerate(jobs)
        )
    )
    tally.window, tally.cpu = time.monotonic() - began, cpu_seconds(pid) - before
    tally.lags = lags.get(timeout=60)
    watching.join(30)
    tally.jobs = jobs  # type: ignore[attr-defined]
    return tally


def drive_sdk(base: str, url: str, reporters: int, seconds: float) -> Tally:
    """Real SDK scripts; what a script logged must all be stored once it has finished."""
    env = {**os.environ, "TRAINMON_URL": base, "TRAINMON_TOKEN": TOKEN}
    env["TRAINMON_EXIT_TIMEOUT"] = "120"
    procs = [
        subprocess.Popen([sys.executable, "-c", SDK_SCRIPT, f"sdk-{i}", str(seconds)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for i in range(reporters)
    ]  # fmt: skip
    tally = Tally(window=seconds)
    jobs = []
    for proc in procs:
        job_id, logged = proc.communicate(timeout=seconds + 180)[0].split()
        jobs.append(job_id)
        tally.points_acked += int(logged)
    engine = create_engine(url)
    with engine.connect() as conn:  # every applied batch left its (job, reporter, seq) row
        tally.accepted = int(conn.execute(text("SELECT count(*) FROM batches")).scalar_one())
    engine.dispose()
    tally.jobs = jobs  # type: ignore[attr-defined]
    return tally


def points_of(base: str, job_ids: list[str]) -> int:
    """Points stored for these jobs (their highest point number, as numbered from 1)."""
    total = 0
    with httpx.Client(base_url=base, timeout=30) as client:
        for job_id in job_ids:
            after, count = None, 0
            while True:
                query = {"limit": 100_000, **({"after": after} if after else {})}
                page = client.get(f"/api/training/jobs/{job_id}/metrics", params=query).json()
                count += len(page["points"])
                after = page.get("nextAfter")
                if not after:
                    break
            total += count
    return total


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,500,1000")
    parser.add_argument("--viewers", default="1,20")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--mode", choices=("raw", "sdk"), default="raw")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs")
    print("targets: 1,000 reporters (2,000 POST/s) accepted with p99 < 100 ms, <= 0.5 ms server")
    print("CPU per POST, viewer lag p99 < 1 s with 20 viewers, 0 points lost")
    header = (
        f"{'backend':9}{'N':>6}{'view':>5}{'POST/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'CPU ms/POST':>12}{'lag p50':>9}{'lag p99':>9}{'lost':>6}{'delayed':>9}{'503s':>7}"
    )
    print(header)
    for backend in args.backends.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            for viewers in (int(v) for v in args.viewers.split(",")):
                print(one_run(backend, size, viewers, args.seconds, args.mode), flush=True)
    print("(lag in ms; lost: answered 2xx but not stored; delayed: sent again after a 503)")


def one_run(backend: str, size: int, viewers: int, seconds: float, mode: str) -> str:
    with (
        tempfile.TemporaryDirectory() as tmp,
        database(backend, Path(tmp)) as url,
        server(
            url, Path(tmp), TOKEN, "--max-connections", "3000", "--max-event-streams", "200"
        ) as (base, port, pid),
    ):
        before = cpu_seconds(pid)
        if mode == "raw":
            tally = asyncio.run(drive_raw(base, port, pid, size, viewers, seconds))
        else:
            tally = drive_sdk(base, url, size, seconds)
            tally.cpu = cpu_seconds(pid) - before  # the scripts' start and end included
        jobs = getattr(tally, "jobs", [])
        lost = tally.points_acked - points_of(base, jobs) if jobs else 0
    posts = tally.accepted or 1
    return (
        f"{backend:9}{size:>6}{viewers:>5}{tally.accepted / tally.window:>9.0f}"
        f"{pct(tally.latencies, 0.5) * 1000:>8.1f}{pct(tally.latencies, 0.99) * 1000:>8.1f}"
        f"{tally.cpu * 1000 / posts:>12.2f}"
        f"{pct(tally.lags, 0.5) * 1000:>9.0f}{pct(tally.lags, 0.99) * 1000:>9.0f}"
        f"{lost:>6}{tally.points_delayed:>9}{tally.busy:>7}"
    )


if __name__ == "__main__":
    main()
