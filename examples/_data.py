"""Data the examples generate for themselves, and a tiny numpy MLP they share."""

from __future__ import annotations

import numpy as np


def blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping Gaussian clouds in 2-D with labels 0/1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 2)) + np.where(y[:, None] == 1, 1.2, -1.2)
    return x, y.astype(np.float64)


def spirals(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals: not linearly separable, so the MLP has something to learn."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.05, 1, n)) * 3 * np.pi
    y = rng.integers(0, 2, n)
    sign = np.where(y == 1, 1.0, -1.0)
    x = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], axis=1) / 10
    x += rng.normal(scale=0.05, size=x.shape)
    return x, y.astype(np.float64)


class MLP:
    """One hidden tanh layer, sigmoid output, binary cross-entropy, plain SGD."""

    def __init__(self, hidden: int = 32, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.w1 = rng.normal(scale=1.0, size=(2, hidden))
        self.b1 = np.zeros(hidden)
        self.w2 = rng.normal(scale=1.0 / np.sqrt(hidden), size=hidden)
        self.b2 = 0.0

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> float:
        h = np.tanh(x @ self.w1 + self.b1)
        p = 1 / (1 + np.exp(-(h @ self.w2 + self.b2)))
        eps = 1e-9
        loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
        g = (p - y) / len(y)
        dh = np.outer(g, self.w2) * (1 - h**2)
        self.w2 -= lr * h.T @ g
        self.b2 -= lr * float(g.sum())
        self.w1 -= lr * x.T @ dh
        self.b1 -= lr * dh.sum(axis=0)
        return loss

    def params(self) -> dict[str, np.ndarray]:
        return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": np.array(self.b2)}
