"""What the benches that start their own server share: a fresh database per run (a SQLite file,
or a PostgreSQL schema of its own), a cold ``trainmon serve --no-executor`` on it, a free port,
and a process's CPU time."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

PG_ADMIN = os.environ.get("TRAINMON_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    """A database URL of this run's own: ``backend`` is sqlite or postgres."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_ADMIN}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextlib.contextmanager
def server(url: str, tmp: Path, token: str, *args: str) -> Iterator[tuple[str, int, int]]:
    """A cold ``trainmon serve --no-executor`` on ``url``: ``(base URL, port, pid)``."""
    port = free_port()
    env = {**os.environ, "TRAINMON_DATA_DIR": str(tmp / "data"), "TRAINMON_TOKEN": token}
    command = [sys.executable, "-m", "trainmon.cli", "serve", "--port", str(port), "--db", url]
    proc = subprocess.Popen(
        [*command, "--no-executor", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).is_success:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.05)
        yield base, port, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
