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

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from trainmon.sdk.errors import JobCancelled

if TYPE_CHECKING:
    from trainmon.sdk.run import Run
    from trainmon.sdk.transport import Transport

__all__ = ["JobCancelled", "Run", "finish", "init", "track"]
__version__ = "0.1.0"

T = TypeVar("T")


def init(
    name: str | None = None,
    total_steps: int | None = None,
    config: Mapping[str, Any] | None = None,
    tags: Iterable[str] | None = None,
    url: str | None = None,
    token: str | None = None,
    *,
    on_cancel: Callable[[], object] | None = None,
    transport: Transport | None = None,
) -> Run:
    """Create the job (or attach to the runner's ``$TRAINMON_JOB_ID``) and mark it running.

    ``url`` and ``token`` default to ``$TRAINMON_URL``/``$TRAINMON_TOKEN``, then the local
    server's data directory. Never raises for an unreachable server or a bad token: those are
    reported once on stderr and the points wait in the journal. ``on_cancel`` is called (once,
    from ``run.log``) instead of raising ``JobCancelled`` when the job is cancelled.
    """
    from trainmon.sdk.run import init as _init

    return _init(
        name, total_steps, config, tags, url, token, on_cancel=on_cancel, transport=transport
    )


def track(
    iterable: Iterable[T], name: str | None = None, total: int | None = None, **init_kwargs: Any
) -> Iterator[T]:
    """Wrap a loop like tqdm: each finished iteration is a step of the current (or a new) run."""
    from trainmon.sdk.track import track as _track

    return _track(iterable, name, total, **init_kwargs)


def finish(status: str | None = None, error: str | None = None) -> None:
    """Finish the current run (``completed``, or ``cancelled`` after a cancel request)."""
    from trainmon.sdk.run import finish as _finish

    _finish(status, error)


def __getattr__(name: str) -> Any:
    if name == "Run":
        from trainmon.sdk.run import Run as _Run

        return _Run
    raise AttributeError(f"module 'trainmon' has no attribute {name!r}")
