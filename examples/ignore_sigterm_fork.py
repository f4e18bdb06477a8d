"""A misbehaving job for cancel tests: it ignores SIGTERM and forks workers that ignore it
too (like DataLoader workers that never installed a handler), one of which forks a
grandchild that leaves the process group with setsid(). Only SIGKILL after the grace period,
and a supervisor that hunts the whole tree, ends it. Writes every PID to ``--pids``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path


def idle() -> None:
    while True:
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pids", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by every fork below
    read_end, write_end = os.pipe()
    workers: list[int] = []
    for index in range(args.workers):
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            if index == 0:
                grandchild = os.fork()
                if grandchild == 0:
                    os.setsid()  # out of the job's process group: killpg alone misses it
                    os.write(write_end, f"{os.getpid()}\n".encode())
                    idle()
            idle()
        workers.append(pid)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        grandchild = int(pipe.readline())
    pids = {"main": os.getpid(), "workers": workers, "grandchild": grandchild}
    args.pids.write_text(json.dumps(pids))
    print(f"ready: {json.dumps(pids)}", flush=True)
    step = 0
    while True:
        step += 1
        print(f"step {step}", flush=True)
        time.sleep(0.5)
        if step > 100_000:
            sys.exit(0)


if __name__ == "__main__":
    main()
