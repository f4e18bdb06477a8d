"""A stand-in for tqdm when it is not installed: same line format, so trainmon's parser and
your terminal see the same bar. Only what the examples use."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class tqdm:
    def __init__(
        self, iterable: Iterable[T] | None = None, total: int | None = None, desc: str = ""
    ) -> None:
        self.iterable = iterable
        self.total = total if total is not None else _len(iterable)
        self.desc = desc
        self.n = 0
        self.postfix = ""
        self.start = time.monotonic()

    def __iter__(self) -> Iterator[T]:
        assert self.iterable is not None
        for item in self.iterable:
            yield item  # type: ignore[misc]
            self.update()
        self.close()

    def set_postfix(self, **values: float) -> None:
        self.postfix = ", ".join(f"{k}={v:.3g}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        self._draw()

    def _draw(self) -> None:
        elapsed = time.monotonic() - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        post = f", {self.postfix}" if self.postfix else ""
        desc = f"{self.desc}: " if self.desc else ""
        clock = f"{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}"
        if self.total:
            pct = 100 * self.n / self.total
            bar = "#" * int(pct / 10)
            counter = f"{self.n}/{self.total} [{clock}, {rate:.2f}it/s{post}]"
            line = f"{desc}{pct:3.0f}%|{bar:<10}| {counter}"
        else:
            line = f"{desc}{self.n}it [{clock}, {rate:.2f}it/s{post}]"
        sys.stderr.write("\r" + line)
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def _len(iterable: object) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None
