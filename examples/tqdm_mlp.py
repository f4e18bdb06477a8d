"""A small MLP on generated spirals that knows nothing of trainmon: it only prints a tqdm bar
with ``loss=`` in the postfix. Under ``trainmon run`` the supervisor reads steps, total and
loss from that bar.

    trainmon run -- python examples/tqdm_mlp.py --epochs 20
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _data import MLP, spirals

try:
    from tqdm import tqdm  # type: ignore[import-untyped]
except ImportError:  # numpy alone is enough: a look-alike bar
    from _bar import tqdm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--delay", type=float, default=0.005, help="seconds per step, to watch")
    args = parser.parse_args()

    x, y = spirals(1024)
    model = MLP()
    rng = np.random.default_rng(1)
    per_epoch = len(x) // args.batch
    bar = tqdm(total=args.epochs * per_epoch, desc="train")
    for epoch in range(args.epochs):
        order = rng.permutation(len(x))
        for i in range(per_epoch):
            batch = order[i * args.batch : (i + 1) * args.batch]
            loss = model.step(x[batch], y[batch], args.lr)
            bar.set_postfix(loss=loss, epoch=epoch)
            bar.update(1)
            time.sleep(args.delay)
    bar.close()
    h = np.tanh(x @ model.w1 + model.b1)
    accuracy = float(np.mean(((h @ model.w2 + model.b2) > 0) == (y > 0.5)))
    print(f"final accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
