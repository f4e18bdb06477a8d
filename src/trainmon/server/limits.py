"""Bounds on what slow, idle or numerous clients can make the server hold (issue 9, item 10).

uvicorn 0.55 (h11) has a keep-alive timeout, but it is armed only after a response: a
connection that never sends a request, or trickles its headers a byte at a time (slowloris),
is held forever, and its ``limit_concurrency`` answers 503 only once a whole request has been
read. So ``GuardedH11Protocol`` adds, per connection:

- a header deadline from the moment a request may start (connect, or the first byte after a
  keep-alive pause) until its headers are complete; a body deadline until the body is in.
  The deadline is for the whole phase, not per byte, so trickling does not extend it.
- a cap on open connections: one beyond it gets a 503 at once and is closed, before it can
  hold a file descriptor for its headers' worth of time.

Event streams hold a connection for hours, so they have their own, lower cap
(``EventStreamSlots``), which leaves room for reporters and health checks.
"""

from __future__ import annotations

import asyncio
import json
import resource
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from trainmon.errors import ServerBusy

RETRY_AFTER_SECONDS = ServerBusy.retry_after
REJECT_LINGER_SECONDS = 1.0  # a refused client has this long to read its 503
# File descriptors kept free of client connections: the database, log files, the executor's
# pipes, and the listening socket itself.
RESERVED_FDS = 64


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    header_timeout: float
    body_timeout: float


def raise_fd_limit() -> int:
    """Raise this process's soft descriptor limit to the hard one (a shell's ulimit -n of 256
    would otherwise cap the connections) and return the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # keep the soft limit; connection_cap() fits under it
    return soft


def connection_cap(max_connections: int, fd_limit: int) -> int:
    """The connection cap in force: the setting, lowered to fit under the descriptor limit so
    that accept() never fails (asyncio then stops accepting for a second, for everyone)."""
    return max(1, min(max_connections, fd_limit - RESERVED_FDS))


def busy_response(message: str) -> bytes:
    """A complete HTTP/1.1 503 in the API's error shape, written without h11's help."""
    body = json.dumps(ServerBusy(message).to_json()).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"retry-after: {RETRY_AFTER_SECONDS}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


def guarded_protocol(limits: ConnectionLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol with ``limits`` (uvicorn builds one instance per connection)."""

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _phase: str = "between"  # "headers", "body", "between" (keep-alive pause or app busy)
        _rejected = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            if len(self.connections) > limits.max_connections:
                self._reject()
                return
            self._enter("headers")

        def _reject(self) -> None:
            # Answer before reading: a request sent meanwhile is read and dropped, so closing
            # does not reset the connection and lose the answer.
            self._rejected = True
            self.transport.write(
                busy_response(f"more than {limits.max_connections} open connections")
            )
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self._arm(REJECT_LINGER_SECONDS)

        def data_received(self, data: bytes) -> None:
            if self._rejected:
                return
            super().data_received(data)
            self._follow()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # uvicorn's keep-alive timer covers the pause; a pipelined request already
            # buffered has been parsed above and starts its own phase here.
            self._enter("between")
            self._follow()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel()
            super().connection_lost(exc)

        def _follow(self) -> None:
            """Track h11's view of the request being read."""
            state = self.conn.their_state
            if state is h11.IDLE:
                if self._phase == "between" and self.conn.trailing_data[0]:
                    self._enter("headers")  # bytes of a next request have arrived
            elif state is h11.SEND_BODY:
                self._enter("body")
            else:
                self._enter("between")  # request read: the app's time is its own

        def _enter(self, phase: str) -> None:
            if phase == self._phase and (phase == "between" or self._deadline is not None):
                return
            self._phase = phase
            self._cancel()
            if phase == "headers":
                self._arm(limits.header_timeout)
            elif phase == "body":
                self._arm(limits.body_timeout)

        def _arm(self, seconds: float) -> None:
            self._cancel()
            self._deadline = self.loop.call_later(seconds, self._expired)

        def _cancel(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            if not self._rejected and self.conn.our_state is h11.IDLE:
                self.transport.write(
                    b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n"
                    b"connection: close\r\n\r\n"
                )
            self.transport.close()

    return GuardedH11Protocol


class EventStreamSlots:
    """A counter of open event streams; the event loop is the only caller, so no lock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def take(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def give_back(self) -> None:
        self.open -= 1


def event_stream_slots(state: Any, limit: int) -> EventStreamSlots:
    """The app's slots, made on first use (``state`` is ``app.state``)."""
    slots: EventStreamSlots | None = getattr(state, "event_stream_slots", None)
    if slots is None:
        slots = EventStreamSlots(limit)
        state.event_stream_slots = slots
    return slots
