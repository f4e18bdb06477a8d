"""A training that traps SIGTERM to save a checkpoint before it exits, like a well-behaved
trainer on a preemptible cluster. trainmon's cancel sends SIGTERM, then waits the job's grace
period before SIGKILL, so the save gets that long.

    trainmon run --grace 30 -- python examples/checkpoint_on_sigterm.py --checkpoint ckpt.npz
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import numpy as np
from _data import MLP, spirals

try:
    from tqdm import tqdm  # type: ignore[import-untyped]
except ImportError:
    from _bar import tqdm

stop_requested = False


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    global stop_requested
    stop_requested = True  # finish the step in hand, then save: never save half an update


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoint.npz"))
    parser.add_argument(
        "--save-seconds",
        type=float,
        default=0.5,
        help="how long saving takes (a big model takes a while)",
    )
    parser.add_argument("--delay", type=float, default=0.02)
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, on_sigterm)
    x, y = spirals(1024, seed=5)
    model = MLP(seed=5)
    rng = np.random.default_rng(5)
    print("ready: SIGTERM saves a checkpoint", flush=True)
    bar = tqdm(range(1, args.steps + 1), desc="train")
    for step in bar:
        batch = rng.integers(0, len(x), 64)
        loss = model.step(x[batch], y[batch], 0.5)
        bar.set_postfix(loss=loss)
        if stop_requested:
            bar.close()
            print(f"SIGTERM at step {step}: saving {args.checkpoint}", flush=True)
            time.sleep(args.save_seconds)
            tmp = args.checkpoint.with_name(args.checkpoint.name + ".tmp.npz")
            np.savez(tmp, step=np.array(step), **model.params())  # type: ignore[arg-type]
            tmp.replace(args.checkpoint)
            print(f"checkpoint saved: {args.checkpoint} (step {step})", flush=True)
            sys.exit(0)
        time.sleep(args.delay)


if __name__ == "__main__":
    main()
