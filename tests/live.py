"""A real ``trainmon serve`` in a subprocess on a free loopback port, for tests and benches."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from trainmon.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """Start, SIGKILL and restart a server on the same port and database."""

    def __init__(
        self,
        data_dir: Path,
        *,
        db_url: str | None = None,
        token: str = "test-token-0123456789",
        executor: bool = True,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.db_url = db_url or f"sqlite:///{data_dir / 'trainmon.db'}"
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.executor = executor
        self.extra_args = extra_args
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server

    @property
    def env(self) -> dict[str, str]:
        """What a client of this server (SDK, CLI, a training script) needs."""
        return {
            **os.environ,
            "TRAINMON_DATA_DIR": str(self.data_dir),
            "TRAINMON_TOKEN": self.token,
            "TRAINMON_URL": self.url,
        }

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, timeout: float = 20.0) -> LiveServer:
        command = [
            sys.executable, "-m", "trainmon.cli", "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--db", self.db_url,
            *(() if self.executor else ("--no-executor",)), *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            env={**self.env, **self.extra_env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL, like a crash: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 10 s); the server can be started again afterwards."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self) -> None:
        self.stop()
        self._log.close()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=10)


TOKEN = "test-token-0123456789"


def make_settings(tmp_path: Path, db_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "token": TOKEN,
        "data_dir": tmp_path / "data",
        "db_url": db_url,
        "run_executor": False,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]
