"""Linear regression with a learning rate far too high: the loss grows, overflows to inf and
becomes NaN. The bar's ``loss=`` shows it; a NaN guard then stops the run (exit code 1)."""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

try:
    from tqdm import tqdm  # type: ignore[import-untyped]
except ImportError:
    from _bar import tqdm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--lr", type=float, default=8.0)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--nan-patience", type=int, default=20, help="NaN steps before giving up")
    args = parser.parse_args()

    rng = np.random.default_rng(7)
    x = rng.normal(size=(512, 8)) * 3
    y = x @ rng.normal(size=8) + rng.normal(scale=0.1, size=512)
    w = np.zeros(8)
    nan_steps = 0
    bar = tqdm(range(args.steps), desc=f"linreg lr={args.lr:g}")
    with np.errstate(over="ignore", invalid="ignore"):
        for step in bar:
            residual = x @ w - y
            loss = float(np.mean(residual**2))
            w -= args.lr * 2 * x.T @ residual / len(y)
            bar.set_postfix(loss=loss)
            nan_steps = nan_steps + 1 if math.isnan(loss) else 0
            if nan_steps >= args.nan_patience:
                bar.close()
                print(
                    f"FloatingPointError: loss is NaN since step {step - nan_steps + 1}",
                    file=sys.stderr,
                )
                sys.exit(1)
            time.sleep(args.delay)


if __name__ == "__main__":
    main()
