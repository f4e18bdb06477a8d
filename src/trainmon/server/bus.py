"""In-process event bus: committed job changes fan out to every subscriber (SSE streams).

Each subscriber keeps only the newest version of each job until it reads, so a job logging
1,000 steps/s costs a slow viewer nothing but the latest snapshot. A change is encoded to JSON
once, by the first viewer that sends it, and the text is shared: fifty viewers cost about what
one does."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

JobJson = dict[str, Any]


def to_json(data: Any) -> str:
    # json.dumps escapes newlines inside strings, so an event's payload is always one line.
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


class Published:
    """A job as it now is (or that it is gone), with its JSON made at most once."""

    __slots__ = ("_text", "body", "kind")

    def __init__(self, body: JobJson) -> None:
        self.body = body
        self.kind = "deleted" if body.get("deleted") else "job"
        self._text: str | None = None

    @property
    def job_id(self) -> str:
        job_id: str = self.body["id"]
        return job_id

    def text(self) -> str:
        if self._text is None:
            self._text = to_json(self.body)
        return self._text


class Subscription:
    def __init__(self) -> None:
        self._pending: dict[str, Published] = {}
        self._ready = asyncio.Event()

    def _offer(self, change: Published) -> None:
        self._pending[change.job_id] = change
        self._ready.set()

    async def get(self) -> list[Published]:
        """Wait for changes; return the newest version of every job changed since last call."""
        await self._ready.wait()
        self._ready.clear()
        changed, self._pending = list(self._pending.values()), {}
        return changed

    def __aiter__(self) -> AsyncIterator[list[Published]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[list[Published]]:
        while True:
            yield await self.get()


class EventBus:
    """``publish`` may be called from any thread; subscribers live on the server's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._subscribers: set[Subscription] = set()
        self._ids = itertools.count(1)
        self.last_id = 0

    def publish(self, job: JobJson) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._deliver, Published(job))

    def _deliver(self, change: Published) -> None:
        self.last_id = next(self._ids)
        for subscriber in self._subscribers:
            subscriber._offer(change)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        subscription = Subscription()
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
