"""trainmon: report a training loop to the dashboard.

    import trainmon
    with trainmon.init(name="llama-lora-r16", total_steps=10_000) as run:
        for step in range(10_000):
            run.log(step=step, loss=train_step())

Importing this package loads only the standard library, and only a little of it: the SDK
proper (threads, HTTP, JSON) loads on the first ``init``/``track``, so ``import trainmon`` in
a script that never reports costs almost nothing. The server and CLI live in subpackages
that are imported only by ``trainmon serve`` and friends.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trainmon.sdk.errors import JobCancelled

if TYPE_CHECKING:
    from trainmon.sdk.run import Run, finish, init
    from trainmon.sdk.track import track

__all__ = ["JobCancelled", "Run", "finish", "init", "track"]
__version__ = "0.1.0"

# The SDK proper, loaded on first use: name -> the module that defines it.
_LAZY = {
    "init": "trainmon.sdk.run",
    "finish": "trainmon.sdk.run",
    "Run": "trainmon.sdk.run",
    "track": "trainmon.sdk.track",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trainmon' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this hook
    return value
