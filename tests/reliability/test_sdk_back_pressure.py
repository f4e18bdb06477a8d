"""Back-pressure, end to end: a server that may hold only one waiting report answers the rest
503 with Retry-After, and real SDK scripts wait and send again until every point is stored,
once. And the SDK's transport keeps one connection for a hundred batches."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from live import LiveServer
from sdk_helpers import Child, client_env, history_steps, job, stop_server
from trainmon.sdk.transport import HttpTransport

SCRIPT = """
import sys, trainmon
n = int(sys.argv[1])
run = trainmon.init("pressed", total_steps=n)
print("JOB", run.id, flush=True)
for i in range(n):
    run.log(step=i, loss=0.5)
run.finish()
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(
        tmp_path / "server-data", executor=False, extra_args=("--max-pending-reports", "1")
    )
    live.data_dir.mkdir(parents=True)
    live.start()
    yield live
    stop_server(live)


def test_a_busy_server_answers_503_with_retry_after(server: LiveServer) -> None:
    """Many small reports at once, from threads: some are turned away, in the one JSON shape."""
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        job_id = client.post("/api/training/jobs", json={"name": "flood"}).json()["id"]
    answers: list[httpx.Response] = []

    def send(seq: int) -> None:
        with httpx.Client(base_url=server.url, headers=server.headers) as own:
            body = {"seq": seq, "points": [{"step": seq, "loss": 0.5}] * 50}
            answers.append(own.post(f"/api/training/jobs/{job_id}/progress", json=body))

    threads = [threading.Thread(target=send, args=(seq,)) for seq in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    busy = [a for a in answers if a.status_code == 503]
    stored = [a for a in answers if a.status_code == 200]
    assert len(busy) + len(stored) == 40, [a.status_code for a in answers]
    assert busy, "40 at once against a queue of 1: some must be turned away"
    assert all(a.headers["retry-after"] == "1" for a in busy)
    assert all(a.json()["error"]["code"] == "server_busy" for a in busy)
    assert len(history_steps(server.url, job_id)) == 50 * len(stored), "refused means not stored"


@pytest.mark.timeout(180)
def test_sdk_scripts_wait_and_every_point_arrives_once(
    server: LiveServer, spawn: Callable[..., Child]
) -> None:
    points = 20_000
    env = client_env(server, TRAINMON_FLUSH_SECONDS="0.05", TRAINMON_EXIT_TIMEOUT="120")
    children = [spawn(SCRIPT, env, str(points)) for _ in range(10)]
    for child in children:
        assert child.wait(150) == 0, child.output()
    busy_seen = 0
    for child in children:
        job_id = (child.line_starting("JOB") or "").split()[1]
        assert history_steps(server.url, job_id) == list(range(points)), child.output()
        assert job(server.url, job_id)["status"] == "completed"
        busy_seen += "is busy" in "".join(child.stderr)
        assert "Traceback" not in "".join(child.stderr), child.output()
    assert busy_seen, "the queue of 1 never filled: the test proved nothing"


def test_the_sdk_keeps_one_connection_for_a_hundred_batches(server: LiveServer) -> None:
    transport = HttpTransport(server.url, server.token)
    connects: list[socket.socket] = []
    real = transport._connect

    def counted() -> object:
        conn = real()
        connects.append(conn)  # type: ignore[arg-type]
        return conn

    transport._connect = counted  # type: ignore[method-assign]
    created = transport("POST", "/api/training/jobs", json.dumps({"name": "kept"}).encode())
    job_id = json.loads(created.body)["id"]
    for seq in range(100):
        body = json.dumps({"seq": seq, "points": [{"step": seq, "loss": 0.1}]}).encode()
        assert transport("POST", f"/api/training/jobs/{job_id}/progress", body).status == 200
    transport.close()
    assert len(connects) == 1, "one TCP connection for the job's whole life"
    assert len(history_steps(server.url, job_id)) == 100
