"""An MLP run that fails part-way, as real ones do: a corrupt batch turns up at step 120.
The job ends failed with exit code 1 and the traceback's last lines as its error."""

from __future__ import annotations

import argparse
import time

import numpy as np
from _data import MLP, spirals

try:
    from tqdm import tqdm  # type: ignore[import-untyped]
except ImportError:
    from _bar import tqdm


def load_batch(
    x: np.ndarray, y: np.ndarray, index: np.ndarray, step: int, bad: int
) -> tuple[np.ndarray, np.ndarray]:
    labels = y[index].copy()
    if step == bad:
        labels[3] = -1.0  # what a truncated shard looks like after decoding
    if np.any((labels != 0) & (labels != 1)):
        raise ValueError(
            f"batch at step {step}: labels must be 0 or 1, got {sorted({float(v) for v in labels})}"
        )
    return x[index], labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--fail-at", type=int, default=120)
    parser.add_argument("--delay", type=float, default=0.01)
    args = parser.parse_args()

    x, y = spirals(1024, seed=3)
    model = MLP(seed=3)
    rng = np.random.default_rng(3)
    for step in tqdm(range(args.steps), desc="train"):
        xb, yb = load_batch(x, y, rng.integers(0, len(x), 64), step, args.fail_at)
        model.step(xb, yb, 0.5)
        time.sleep(args.delay)


if __name__ == "__main__":
    main()
