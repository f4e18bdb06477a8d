"""Keep-alive HTTP for small JSON requests, standard library only.

``TCP_NODELAY`` because Nagle plus delayed ACK costs ~40 ms per small request here; one
connection reused across requests; a connection the server closed while idle is replaced
transparently (every SDK request is idempotent: jobs carry a client id, batches a sequence).
"""

from __future__ import annotations

import http.client
import socket
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    retry_after: float | None = None  # seconds, when a busy server says when to come back


def retry_after(value: str | None) -> float | None:
    """A Retry-After header in seconds (the HTTP-date form is not one we send)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds <= 3600 else None


class TransportError(OSError):
    """The server could not be reached or the connection broke; worth retrying later."""


# What the flusher needs: (method, path, body) -> Response, or TransportError.
Transport = Callable[[str, str, bytes | None], Response]


class _NoDelayConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _NoDelayHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class HttpTransport:
    """One keep-alive connection to ``url``; not thread-safe (one per thread)."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"trainmon: not an http(s) URL: {url!r}")
        self.url = url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        cls = _NoDelayHTTPSConnection if self._https else _NoDelayConnection
        return cls(self._host, self._port, timeout=self._timeout)

    def __call__(self, method: str, path: str, body: bytes | None = None) -> Response:
        reused = self._conn is not None
        try:
            return self._request(method, path, body)
        except (http.client.HTTPException, OSError) as exc:
            self.close()
            if not reused:
                raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        # The kept-alive connection had gone stale (server idle timeout or restart): one
        # fresh attempt, so the caller sees an error only when the server is really away.
        try:
            return self._request(method, path, body)
        except (http.client.HTTPException, OSError) as exc:
            self.close()
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc

    def _request(self, method: str, path: str, body: bytes | None) -> Response:
        if self._conn is None:
            self._conn = self._connect()
        self._conn.request(method, self._prefix + path, body=body, headers=self._headers)
        answer = self._conn.getresponse()
        data = answer.read()
        if answer.will_close:
            self.close()
        return Response(answer.status, data, retry_after(answer.getheader("Retry-After")))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
