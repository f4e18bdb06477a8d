"""Dashboard sign-in: sessions issued in exchange for the token, one-time sign-in links, and a
limit on wrong tokens. A session is the browser's only proof of authority besides the token."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from trainmon.settings import Settings
from trainmon.store import Store

Clock = Callable[[], float]


def derive(settings: Settings, purpose: str) -> str:
    """A value bound to the write token: a new token changes every one of them."""
    return hmac.new(settings.token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def session_id_of(secret: str) -> str:
    # Stored hashed: a copy of the database is not a set of cookies.
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_token(settings: Settings, session_id: str) -> str:
    """The CSRF token of one session: useless without that session's cookie."""
    return derive(settings, f"csrf:{session_id}")


class SessionBook:
    """Sessions in the database, so a server restart keeps people signed in."""

    def __init__(self, store: Store, settings: Settings, clock: Clock = time.time) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.fingerprint = derive(settings, "session-token")

    def open(self) -> str:
        """A new session; returns the cookie's secret."""
        secret = secrets.token_urlsafe(32)
        now = self.clock()
        expires = now + self.settings.session_days * 86400
        with self.store.write() as conn:
            self.store.delete_sessions_expired(conn, now)
            self.store.insert_session(conn, session_id_of(secret), now, expires, self.fingerprint)
        return secret

    def check(self, secret: str | None) -> str | None:
        """The session id behind a cookie, if it is a live session under the current token."""
        if not secret or len(secret) > 256:
            return None
        session_id = session_id_of(secret)
        with self.store.read() as conn:
            found = self.store.find_session(conn, session_id)
        if found is None:
            return None
        expires_at, fingerprint = found
        if expires_at <= self.clock() or not hmac.compare_digest(fingerprint, self.fingerprint):
            return None
        return session_id

    def close(self, secret: str | None) -> None:
        if secret and len(secret) <= 256:
            with self.store.write() as conn:
                self.store.delete_session(conn, session_id_of(secret))


@dataclass
class SignInLinks:
    """One-time codes for the sign-in link ``trainmon serve`` prints, as Jupyter does. Kept in
    memory: a link is for this server process, and is spent by its first use."""

    lifetime: float = 24 * 3600
    clock: Clock = time.time
    _codes: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            now = self.clock()
            self._codes = {c: t for c, t in self._codes.items() if t > now}
            self._codes[code] = now + self.lifetime
        return code

    def redeem(self, code: str) -> bool:
        with self._lock:
            expires = self._codes.pop(code, None)
        return expires is not None and expires > self.clock()


@dataclass
class FailureLimiter:
    """At most ``limit`` wrong tokens per client per ``window`` seconds; then a wait."""

    limit: int = 5
    window: float = 60.0
    clock: Clock = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, client: str) -> int:
        """Seconds this client must wait before its next try; 0 when it may try now."""
        with self._lock:
            recent = self._recent(client)
            if len(recent) < self.limit:
                return 0
            return max(1, int(recent[0] + self.window - self.clock()) + 1)

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(self.clock())

    def _recent(self, client: str) -> deque[float]:
        now = self.clock()
        if len(self._failures) > 10_000:  # many clients: forget the ones that went quiet
            self._failures = {
                c: d for c, d in self._failures.items() if d and d[-1] > now - self.window
            }
        recent = self._failures.setdefault(client, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        return recent
