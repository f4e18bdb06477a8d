"""The server's one typed settings object: CLI flags, then ``TRAINMON_*`` environment, then
defaults. Built once and passed to ``create_app``; nothing reads the environment later."""

from __future__ import annotations

import ipaddress
import math
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainmon.local import DEFAULT_PORT, TOKEN_FILE, data_dir
from trainmon.runner.executor import DEFAULT_EXECUTOR, UnknownExecutor, check_executor_name

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
MIN_TOKEN_LENGTH = 16


class SettingsError(ValueError):
    """A setting that cannot be used; the CLI prints it as one line."""


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_db_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'trainmon.db'}"


def ensure_private_dir(directory: Path) -> None:
    """The data directory holds the token, the database and the logs: only its owner may look
    inside. A directory an older release made 0755 is tightened, since its files are not."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if directory.stat().st_mode & 0o077:
        directory.chmod(0o700)


def ensure_token(directory: Path) -> str:
    """The token in ``directory``, created (mode 0600) on first start."""
    path = directory / TOKEN_FILE
    ensure_private_dir(directory)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        existing = path.read_text().strip()
        if existing:
            return existing
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


@dataclass(frozen=True)
class Settings:
    token: str
    token_source: str = "the settings"  # where the token came from, for the startup banner
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = field(default_factory=data_dir)
    db_url: str = ""
    allowed_hosts: tuple[str, ...] = ()
    heartbeat_interval: float = 10.0
    lost_contact_timeout: float = 60.0
    max_concurrent: int | None = None  # None: one per GPU, else 1 (the executor counts them)
    executor: str = DEFAULT_EXECUTOR  # what runs jobs created with a command (runner/executor.py)
    run_executor: bool = True
    max_body_bytes: int = 8 * 1024 * 1024
    session_days: float = 7.0
    # Hostile load (issue 9): bounds on what one client or job can make the server hold.
    max_metric_keys: int = 1_000  # distinct metric names per job
    max_connections: int = 1_000  # open HTTP connections; beyond it: 503 and close
    max_event_streams: int = 100  # open SSE streams (they count as connections too)
    max_pending_reports: int = 5_000  # reports waiting to be stored; beyond it: 503 (ingest.py)
    header_timeout: float = 10.0  # seconds to send a request's headers
    body_timeout: float = 30.0  # seconds to send its body
    keep_alive_timeout: float = 20.0  # idle seconds between requests (the SDK flushes every 0.5)
    # Retention (issue 9): finished jobs older than this are deleted (None: kept forever);
    # pending jobs that never report fail after pending_timeout seconds.
    keep_days: float | None = None
    pending_timeout: float = 24 * 3600.0
    housekeeping_interval: float = 60.0  # seconds between retention rounds

    @property
    def reads_need_token(self) -> bool:
        return not is_loopback(self.host)

    @property
    def database_url(self) -> str:
        return self.db_url or default_db_url(self.data_dir)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def host_names(self) -> frozenset[str]:
        """``Host`` header values (without port) this server answers to; others are refused to
        stop DNS rebinding."""
        names = {"localhost", "127.0.0.1", "[::1]", "::1", self.host, *self.allowed_hosts}
        if ":" in self.host:
            names.add(f"[{self.host}]")
        return frozenset(n.lower() for n in names)


def resolve_token(env: dict[str, str], directory: Path) -> tuple[str, str]:
    """The write token and where it came from: ``TRAINMON_TOKEN``, else the token file."""
    token = env.get("TRAINMON_TOKEN", "").strip()
    if token:
        if len(token) < MIN_TOKEN_LENGTH:
            raise SettingsError(
                f"TRAINMON_TOKEN is {len(token)} characters; use at least {MIN_TOKEN_LENGTH} "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        ensure_private_dir(directory)
        return token, "$TRAINMON_TOKEN"
    return ensure_token(directory), str(directory / TOKEN_FILE)


_DURATION = re.compile(r"(?P<amount>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[smhd]?)", re.IGNORECASE)
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``"24h"``, ``"30m"``, ``"90s"``, ``"2d"`` or plain seconds (``"3600"``), as seconds."""
    match = _DURATION.fullmatch(text.strip())
    seconds = float(match["amount"]) * _UNIT_SECONDS[match["unit"].lower()] if match else 0.0
    if not (seconds > 0 and math.isfinite(seconds)):
        raise SettingsError(
            f"not a duration: {text!r} (use e.g. 24h, 30m, 90s or plain seconds, above 0)"
        )
    return seconds


def resolve_retention(
    keep_days: float | None, pending_timeout: str | None, env: dict[str, str]
) -> dict[str, Any]:
    """``keep_days`` and ``pending_timeout`` from the flags, else ``TRAINMON_KEEP_DAYS`` and
    ``TRAINMON_PENDING_TIMEOUT``, else the defaults (keep forever; 24 h)."""
    found: dict[str, Any] = {}
    days = keep_days
    if days is None and env.get("TRAINMON_KEEP_DAYS", "").strip():
        try:
            days = float(env["TRAINMON_KEEP_DAYS"])
        except ValueError:
            days = 0.0
        if not days > 0 or not math.isfinite(days):
            raise SettingsError(
                f"TRAINMON_KEEP_DAYS={env['TRAINMON_KEEP_DAYS']!r}: use a number of days above 0"
            )
    if days is not None:
        found["keep_days"] = days
    timeout = pending_timeout or env.get("TRAINMON_PENDING_TIMEOUT", "").strip()
    if timeout:
        found["pending_timeout"] = parse_duration(timeout)
    return found


# Settings field -> its environment variable; flags of the same name win over these.
LIMIT_VARIABLES = {
    "max_metric_keys": "TRAINMON_MAX_METRIC_KEYS",
    "max_connections": "TRAINMON_MAX_CONNECTIONS",
    "max_event_streams": "TRAINMON_MAX_EVENT_STREAMS",
    "max_pending_reports": "TRAINMON_MAX_PENDING_REPORTS",
    "header_timeout": "TRAINMON_HEADER_TIMEOUT",
    "body_timeout": "TRAINMON_BODY_TIMEOUT",
    "keep_alive_timeout": "TRAINMON_KEEP_ALIVE_TIMEOUT",
}


def resolve_limits(flags: dict[str, float | None], env: dict[str, str]) -> dict[str, Any]:
    """The limit fields that a flag or a variable sets; a bad variable is one-line error."""
    found: dict[str, Any] = {}
    for name, variable in LIMIT_VARIABLES.items():
        kind = type(getattr(Settings, name))
        value: float | None = flags.get(name)
        if value is None and env.get(variable, "").strip():
            try:
                value = kind(env[variable])
            except ValueError:
                raise SettingsError(f"{variable} must be a number, not {env[variable]!r}") from None
            if not 0 < value < 1e9:
                raise SettingsError(f"{variable} must be above 0, not {env[variable]!r}")
        if value is not None:
            found[name] = kind(value)
    return found


def resolve_executor(flag: str | None, env: dict[str, str]) -> str:
    name = flag or env.get("TRAINMON_EXECUTOR", "").strip() or DEFAULT_EXECUTOR
    try:
        return check_executor_name(name)
    except UnknownExecutor as exc:
        raise SettingsError(str(exc)) from None


def build_settings(
    *,
    host: str | None = None,
    port: int | None = None,
    db: str | None = None,
    allowed_hosts: tuple[str, ...] = (),
    heartbeat_interval: float | None = None,
    lost_contact_timeout: float | None = None,
    max_concurrent: int | None = None,
    executor: str | None = None,
    run_executor: bool = True,
    limits: dict[str, float | None] | None = None,
    keep_days: float | None = None,
    pending_timeout: str | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    """Flags win over ``TRAINMON_*`` variables, which win over defaults."""
    env = dict(os.environ) if env is None else env
    directory = (
        Path(env["TRAINMON_DATA_DIR"]).expanduser()
        if env.get("TRAINMON_DATA_DIR")
        else (data_dir())
    )
    token, token_source = resolve_token(env, directory)
    db_url = db or env.get("TRAINMON_DATABASE_URL", "")
    if db_url:
        from trainmon.store.engine import DatabaseUrlError, parse_database_url

        try:
            parse_database_url(db_url)
        except DatabaseUrlError as exc:
            raise SettingsError(str(exc)) from None
    env_hosts = tuple(h for h in env.get("TRAINMON_ALLOWED_HOSTS", "").split(",") if h.strip())
    return Settings(
        token=token,
        token_source=token_source,
        host=host or env.get("TRAINMON_HOST") or "127.0.0.1",
        port=port if port is not None else int(env.get("TRAINMON_PORT") or DEFAULT_PORT),
        data_dir=directory,
        db_url=db_url,
        allowed_hosts=tuple(h.strip() for h in (*allowed_hosts, *env_hosts)),
        heartbeat_interval=heartbeat_interval
        if heartbeat_interval is not None
        else float(env.get("TRAINMON_HEARTBEAT_SECONDS") or 10.0),
        lost_contact_timeout=lost_contact_timeout
        if lost_contact_timeout is not None
        else float(env.get("TRAINMON_LOST_CONTACT_SECONDS") or 60.0),
        max_concurrent=max_concurrent
        if max_concurrent is not None
        else int(env.get("TRAINMON_MAX_CONCURRENT") or 0) or None,
        executor=resolve_executor(executor, env),
        run_executor=run_executor,
        session_days=float(env.get("TRAINMON_SESSION_DAYS") or 7.0),
        **resolve_limits(limits or {}, env),
        **resolve_retention(keep_days, pending_timeout, env),
    )
