"""The server's one typed settings object: CLI flags, then ``TRAINMON_*`` environment, then
defaults. Built once and passed to ``create_app``; nothing reads the environment later."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from trainmon.local import DEFAULT_PORT, TOKEN_FILE, data_dir
from trainmon.runner.scheduler import default_max_concurrent

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_db_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'trainmon.db'}"


def ensure_token(directory: Path) -> str:
    """The token in ``directory``, created (mode 0600) on first start."""
    path = directory / TOKEN_FILE
    directory.mkdir(parents=True, exist_ok=True)
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
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = field(default_factory=data_dir)
    db_url: str = ""
    allowed_hosts: tuple[str, ...] = ()
    heartbeat_interval: float = 10.0
    lost_contact_timeout: float = 60.0
    max_concurrent: int = 1
    run_executor: bool = True
    max_body_bytes: int = 8 * 1024 * 1024

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


def build_settings(
    *,
    host: str | None = None,
    port: int | None = None,
    db: str | None = None,
    allowed_hosts: tuple[str, ...] = (),
    heartbeat_interval: float | None = None,
    lost_contact_timeout: float | None = None,
    max_concurrent: int | None = None,
    run_executor: bool = True,
    env: dict[str, str] | None = None,
) -> Settings:
    """Flags win over ``TRAINMON_*`` variables, which win over defaults."""
    env = dict(os.environ) if env is None else env
    directory = (
        Path(env["TRAINMON_DATA_DIR"]).expanduser()
        if env.get("TRAINMON_DATA_DIR")
        else (data_dir())
    )
    token = env.get("TRAINMON_TOKEN", "").strip() or ensure_token(directory)
    env_hosts = tuple(h for h in env.get("TRAINMON_ALLOWED_HOSTS", "").split(",") if h.strip())
    return Settings(
        token=token,
        host=host or env.get("TRAINMON_HOST") or "127.0.0.1",
        port=port if port is not None else int(env.get("TRAINMON_PORT") or DEFAULT_PORT),
        data_dir=directory,
        db_url=db or env.get("TRAINMON_DATABASE_URL", ""),
        allowed_hosts=tuple(h.strip() for h in (*allowed_hosts, *env_hosts)),
        heartbeat_interval=heartbeat_interval
        if heartbeat_interval is not None
        else float(env.get("TRAINMON_HEARTBEAT_SECONDS") or 10.0),
        lost_contact_timeout=lost_contact_timeout
        if lost_contact_timeout is not None
        else float(env.get("TRAINMON_LOST_CONTACT_SECONDS") or 60.0),
        max_concurrent=max_concurrent
        if max_concurrent is not None
        else int(env.get("TRAINMON_MAX_CONCURRENT") or 0) or default_max_concurrent(),
        run_executor=run_executor,
    )
