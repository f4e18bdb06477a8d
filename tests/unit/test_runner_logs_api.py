"""The log routes in process: tail, offset, download, 404."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from trainmon.cli.run import Chunk, exit_code_of, follow_log
from trainmon.client import ApiClient
from trainmon.runner.logfile import LogWriter, log_path
from trainmon.server.app import create_app
from trainmon.server.routes import logs
from trainmon.settings import Settings

TOKEN = "test-token-0123456789"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    data = tmp_path / "data"
    settings = Settings(
        token=TOKEN, data_dir=data, db_url=f"sqlite:///{tmp_path / 'logs.db'}", run_executor=False
    )
    app = create_app(settings)
    if not any(getattr(r, "path", "") == "/api/training/jobs/{job_id}/logs" for r in app.routes):
        app.include_router(logs.router)  # until the app includes it itself
    with TestClient(app, base_url="http://127.0.0.1") as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client, data


def make_job(client: TestClient) -> str:
    answer = client.post(
        "/api/training/jobs",
        json={"name": "logged", "command": {"argv": ["true"], "cwd": None, "env": {}}},
    )
    assert answer.status_code == 201, answer.text
    job_id: str = answer.json()["id"]
    return job_id


def test_tail_offset_and_download(api: tuple[TestClient, Path]) -> None:
    client, data = api
    job_id = make_job(client)
    empty = client.get(f"/api/training/jobs/{job_id}/logs")
    assert empty.json() == {"lines": [], "size": 0}
    writer = LogWriter(log_path(data, job_id))
    writer.write(b"one\ntwo\n\x1b[1mthree\x1b[0m\r 50%| 1/2 [00:00<?, ?it/s]\n")
    tail = client.get(f"/api/training/jobs/{job_id}/logs", params={"tail": 2}).json()
    assert tail == {"lines": ["two", " 50%| 1/2 [00:00<?, ?it/s]"], "size": writer.written}
    first = client.get(f"/api/training/jobs/{job_id}/logs", params={"offset": 4}).json()
    assert first["text"].startswith("two\n") and first["offset"] == writer.written
    writer.write(b"four\n")
    more = client.get(f"/api/training/jobs/{job_id}/logs", params={"offset": first["offset"]})
    assert more.json() == {"text": "four\n", "offset": writer.written, "size": writer.written}
    whole = client.get(f"/api/training/jobs/{job_id}/logs/download")
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "text/plain; charset=utf-8"
    assert whole.content == log_path(data, job_id).read_bytes()
    writer.close()


@pytest.mark.parametrize("suffix", ["/logs", "/logs/download"])
def test_unknown_job_is_404_json(api: tuple[TestClient, Path], suffix: str) -> None:
    client, _ = api
    answer = client.get(f"/api/training/jobs/nosuchjob00{suffix}")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("params", [{"tail": -1}, {"tail": 10_001}, {"offset": -5}])
def test_bad_parameters_are_422(api: tuple[TestClient, Path], params: dict[str, int]) -> None:
    client, _ = api
    job_id = make_job(client)
    answer = client.get(f"/api/training/jobs/{job_id}/logs", params=params)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "validation_error"


def test_follow_log_streams_until_the_job_ends(api: tuple[TestClient, Path]) -> None:
    client, data = api
    job_id = make_job(client)
    writer = LogWriter(log_path(data, job_id))
    writer.write(b"first\n")
    cli = ApiClient("http://127.0.0.1", TOKEN)
    cli._http = client  # the app in process instead of a socket
    # The job is still queued: read what is there, then end it the way a supervisor would.
    items = follow_log(cli, job_id, poll=0.0)
    assert next(items) == Chunk("first\n", 6)
    writer.write(b"second\n")
    assert next(items) == Chunk("second\n", 13)
    client.post(f"/api/training/jobs/{job_id}/cancel")
    writer.write(b"last words\n")
    rest = list(items)
    assert rest[0] == Chunk("last words\n", 24)
    assert isinstance(rest[-1], dict) and rest[-1]["status"] == "cancelled"
    assert exit_code_of(rest[-1]) == 1
    writer.close()
