"""In-process event bus: committed job changes fan out to every subscriber (SSE streams).

Each subscriber keeps only the newest version of each job until it reads, so a job logging
1,000 steps/s costs a slow viewer nothing but the latest snapshot."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

JobJson = dict[str, Any]


class Subscription:
    def __init__(self) -> None:
        self._pending: dict[str, JobJson] = {}
        self._ready = asyncio.Event()

    def _offer(self, job: JobJson) -> None:
        self._pending[job["id"]] = job
        self._ready.set()

    async def get(self) -> list[JobJson]:
        """Wait for changes; return the newest version of every job changed since last call."""
        await self._ready.wait()
        self._ready.clear()
        changed, self._pending = list(self._pending.values()), {}
        return changed

    def __aiter__(self) -> AsyncIterator[list[JobJson]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[list[JobJson]]:
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
        self._loop.call_soon_threadsafe(self._deliver, job)

    def _deliver(self, job: JobJson) -> None:
        self.last_id = next(self._ids)
        for subscriber in self._subscribers:
            subscriber._offer(job)

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
