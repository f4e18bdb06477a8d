"""The server under test and the API a training script would use, for browser tests and the
dashboard bench: a real ``trainmon serve`` subprocess on a free port with its own data dir."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

TOKEN = "e2e-token-0123456789"


class ServerFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Api:
    """The HTTP API as a script or the runner uses it."""

    client: httpx.Client
    seqs: dict[str, itertools.count[int]] = field(default_factory=dict)

    def create(self, name: str, **body: Any) -> dict[str, Any]:
        r = self.client.post("/api/training/jobs", json={"name": name, **body})
        assert r.status_code in (200, 201), r.text
        job: dict[str, Any] = r.json()
        return job

    def report(self, job_id: str, **body: Any) -> dict[str, Any]:
        seq = next(self.seqs.setdefault(job_id, itertools.count(1)))
        payload = {"reporter": "e2e", "seq": seq, **body}
        r = self.client.post(f"/api/training/jobs/{job_id}/progress", json=payload)
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer

    def get(self, job_id: str) -> dict[str, Any]:
        r = self.client.get(f"/api/training/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        return job

    def cancel(self, job_id: str) -> httpx.Response:
        return self.client.post(f"/api/training/jobs/{job_id}/cancel")

    def running(self, name: str, step: int = 0, total: int | None = None, **extra: Any) -> str:
        job = self.create(name, **({"totalSteps": total} if total else {}))
        self.report(job["id"], status="running", currentStep=step, **extra)
        return str(job["id"])


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    api: Api

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"trainmon serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # a readiness poll, not coordination
    raise ServerFailed(f"trainmon serve did not answer within the deadline:\n{log.read_text()}")


def start_server(tmp: Path, *args: str, host: str = "127.0.0.1", port: int | None = None) -> Server:
    port = port or free_port()
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    env = {**os.environ, "TRAINMON_DATA_DIR": str(data), "TRAINMON_TOKEN": TOKEN}
    env.pop("TRAINMON_URL", None)
    argv = ["serve", "--host", host, "--port", str(port), "--db", f"sqlite:///{data}/db.sqlite"]
    log = tmp / "server.log"
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "trainmon.cli", *argv, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, proc, log, time.monotonic() + 30)
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    return Server(url, port, proc, log, Api(client))


def stop_server(server: Server) -> None:
    server.api.client.close()
    server.proc.terminate()
    try:
        server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


def sign_in(page: Any, server: Server) -> None:
    """Sign the browser in through the sign-in page with the token, as a person would."""
    page.goto(server.url + "/login")
    page.get_by_label("Token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/")


def live_item(page: Any, job_id: str) -> Any:
    """A job in the dashboard's live sections: its card while active, its row once finished."""
    return page.locator(
        f'#active-list > [data-job-id="{job_id}"], #recent-list > [data-job-id="{job_id}"]'
    )
