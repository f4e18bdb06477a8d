"""A config too deep or too large is refused at the door, and a stored row that cannot be
rendered (written around the API) shows with an error marker instead of breaking every list."""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from live import LiveServer
from trainmon.cli import main
from trainmon.jsonlimits import MAX_CONFIG_DEPTH, json_depth, json_problem
from trainmon.store import Store
from trainmon.store.tables import jobs

JOBS = "/api/training/jobs"


def nested(depth: int) -> dict[str, Any]:
    """A dict ``depth`` levels deep: ``nested(1) == {"a": 1}``."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return dict(value)


@pytest.mark.parametrize(
    ("value", "depth"),
    [
        (1, 0),
        ("text", 0),
        ({}, 1),
        ([], 1),
        ({"a": [1, {"b": None}]}, 3),
        ([[[[]]]], 4),
        (nested(32), 32),
        (nested(5_000), 5_000),  # no recursion: stored rows can be deeper than Python's stack
    ],
)
def test_json_depth(value: object, depth: int) -> None:
    assert json_depth(value) == depth


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"lr": 3e-4, "layers": [64, 64]}, None),
        (nested(32), None),
        (nested(33), "nested 33 levels deep; at most 32"),
        ({"s": "x" * (64 * 1024)}, "larger than 64 KiB"),
        (["t" * 100] * 700, "larger than 64 KiB"),
        ({"lr": float("nan")}, "plain JSON"),
    ],
)
def test_json_problem(value: object, problem: str | None) -> None:
    found = json_problem(value, max_depth=MAX_CONFIG_DEPTH, max_bytes=64 * 1024)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


# -- at the door ---------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 255, 300])
def test_a_deep_config_is_a_422_naming_the_field(client: TestClient, depth: int) -> None:
    response = client.post(JOBS, json={"name": "deep", "config": nested(depth)})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["field"] == "config"
    assert f"{depth} levels" in error["message"]
    assert client.get(JOBS).status_code == 200


def test_a_config_32_deep_is_stored_and_listed(client: TestClient) -> None:
    response = client.post(JOBS, json={"name": "deep-ok", "config": nested(32)})
    assert response.status_code == 201, response.text
    listed = client.get(JOBS)
    assert listed.status_code == 200
    assert listed.json()["jobs"][0]["config"] == nested(32)


def test_a_config_over_64_kib_is_a_422(client: TestClient) -> None:
    response = client.post(JOBS, json={"name": "big", "config": {"s": "x" * 70_000}})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "config"


# -- rows written around the API -----------------------------------------------------------------

BAD_CONFIGS = {
    "deep": json.dumps(nested(300)),  # what the API stored before the limit
    "very deep": '{"a":' * 5_000 + "1" + "}" * 5_000,  # beyond Python's stack to decode
    "not json": '{"lr": 3e-4',
    "nan": '{"lr": NaN}',  # the event stream refuses NaN
}


def insert_raw(store: Store, name: str, status: str, **columns: object) -> str:
    job_id = uuid.uuid4().hex[:12]
    now = time.time()
    with store.engine.begin() as conn:
        conn.execute(
            jobs.insert().values(
                id=job_id,
                name=name,
                status=status,
                created_at=now,
                updated_at=now,
                executor="sdk",
                **columns,
            )
        )
    return job_id


def test_bad_rows_list_with_a_render_error(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    good = client.post(JOBS, json={"name": "good", "config": {"lr": 1}}).json()
    bad = {kind: insert_raw(store, kind, "failed", config=raw) for kind, raw in BAD_CONFIGS.items()}
    bad["bad tags"] = insert_raw(store, "bad tags", "running", tags="[1,")
    bad["bad metrics"] = insert_raw(store, "bad metrics", "pending", metrics="{")
    with caplog.at_level(logging.WARNING, logger="trainmon"):
        response = client.get(JOBS)
    assert response.status_code == 200, response.text
    listed = {job["id"]: job for job in response.json()["jobs"]}
    assert listed[good["id"]]["config"] == {"lr": 1} and "renderError" not in listed[good["id"]]
    for kind, job_id in bad.items():
        job = listed[job_id]
        assert job["config"] is None and job["renderError"], (kind, job)
        assert job["name"] == kind
        assert job["status"] == ("running" if kind == "bad tags" else job["status"])
        assert job_id in caplog.text, kind
        one = client.get(f"{JOBS}/{job_id}")
        assert one.status_code == 200 and one.json()["renderError"], one.text
    assert listed[bad["deep"]]["status"] == "failed"
    assert listed[bad["bad metrics"]]["status"] == "pending"
    # The events snapshot and the dashboard take the same path.
    assert client.get("/").status_code == 200


def test_a_bad_row_keeps_its_stored_text_when_the_job_changes(client: TestClient) -> None:
    """Cancelling a job whose config cannot be read must not overwrite the config with {}."""
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    job_id = insert_raw(store, "broken", "pending", config='{"lr": 3e-4')
    response = client.post(f"{JOBS}/{job_id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    with store.engine.connect() as conn:
        stored = conn.execute(jobs.select().where(jobs.c.id == job_id)).mappings().one()
    assert stored["config"] == '{"lr": 3e-4' and stored["status"] == "cancelled"


def test_trainmon_ls_lists_a_bad_row(tmp_path: Path, db_url: str) -> None:
    live = LiveServer(tmp_path / "srv", db_url=db_url, executor=False)
    live.data_dir.mkdir(parents=True)
    live.start()
    try:
        store = Store(db_url)
        try:
            bad = insert_raw(store, "too-deep", "completed", config=BAD_CONFIGS["deep"])
        finally:
            store.dispose()
        with live.client() as api:
            good = api.post(JOBS, json={"name": "fine"}).json()
        env = {"TRAINMON_URL": live.url, "TRAINMON_TOKEN": live.token, "COLUMNS": "200"}
        result = CliRunner().invoke(main, ["ls"], env=env)
        as_json = CliRunner().invoke(main, ["ls", "--json"], env=env)
        live.stop()
        server_output = live.output()
    finally:
        live.close()
    assert result.exit_code == 0, (result.output, server_output)
    lines = result.output.splitlines()
    assert any(bad in line and "too-deep" in line and "completed" in line for line in lines)
    assert any(good["id"] in line for line in lines)
    shown = {job["id"]: job for job in json.loads(as_json.output)["jobs"]}
    assert shown[bad]["config"] is None and "300 levels" in shown[bad]["renderError"]
    assert f"job {bad}" in server_output  # logged by the server, with the id
