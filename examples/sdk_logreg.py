"""Logistic regression on generated 2-D blobs, reported with the trainmon SDK.

python examples/sdk_logreg.py                 # creates a job on the local server
trainmon run -- python examples/sdk_logreg.py # the runner's job; the SDK attaches to it
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _data import blobs

import trainmon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--delay", type=float, default=0.01, help="seconds per step, to watch")
    args = parser.parse_args()

    x, y = blobs(2000)
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(3)
    config = {"lr": args.lr, "model": "logistic regression", "samples": len(x)}
    with trainmon.init(name="logreg (SDK)", total_steps=args.steps, config=config) as run:
        for step in range(1, args.steps + 1):
            p = 1 / (1 + np.exp(-(xb @ w)))
            loss = float(-np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9)))
            w -= args.lr * xb.T @ (p - y) / len(y)
            accuracy = float(np.mean((p > 0.5) == (y > 0.5)))
            run.log(step=step, loss=loss, accuracy=accuracy, lr=args.lr)
            if step % 100 == 0:
                print(f"step {step}: loss {loss:.4f}, accuracy {accuracy:.3f}")
            time.sleep(args.delay)
    print(f"done: weights {np.round(w, 3).tolist()}")


if __name__ == "__main__":
    main()
