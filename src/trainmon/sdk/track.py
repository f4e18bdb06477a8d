"""``trainmon.track``: a tqdm-like wrapper that reports a loop's progress unchanged."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from trainmon.sdk.run import current_run, init

T = TypeVar("T")


def track(
    iterable: Iterable[T],
    name: str | None = None,
    total: int | None = None,
    **init_kwargs: Any,
) -> Iterator[T]:
    """Yield from ``iterable``, logging one step per finished iteration.

    Reports into the current run if ``trainmon.init`` made one; else makes its own (named
    ``name``), finished as completed when the loop is exhausted. A cancel request raises
    ``JobCancelled`` at the next iteration.
    """
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    run = current_run()
    owned = run is None
    if run is None:
        run = init(name, total_steps=total, **init_kwargs)
    log = run.log
    try:
        for step, item in enumerate(iterable, start=1):
            yield item
            log(step=step)  # steps done so far, so the last one equals ``total``
    except GeneratorExit:
        raise  # the loop was left early (break, or an error in its body): exit decides
    except BaseException as exc:  # JobCancelled, or the iterable itself failed
        if owned:
            run.finish_after(exc)
        raise
    if owned:
        run.finish()
