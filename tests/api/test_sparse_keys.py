"""Issue 9 item 7: a batch whose points each carry their own metric key (sparse keys) is stored
in time and space linear in the (point, key) pairs present, within a per-job key limit.

Before the fix a 6,000-point batch with 6,000 keys was 36 million nulls: 33 s in the write
lock, 317 MB of database, 12 s of stall for every other job, 49 s to read 10 points back."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from live import TOKEN, LiveServer, make_settings
from trainmon.errors import ValidationFailed
from trainmon.models import Point
from trainmon.reporting import ProgressReport, batch_metric_keys, metric_keys_after
from trainmon.server.app import create_app
from trainmon.service import JobCreate, JobService
from trainmon.settings import SettingsError, build_settings
from trainmon.store import Store
from trainmon.store.store import decode_chunk, encode_chunk

JOBS = "/api/training/jobs"
N = 6_000


def sparse_points(n: int = N, prefix: str = "k") -> list[dict[str, Any]]:
    return [
        {"step": i, "time": 1_764_456_000.0 + i, "metrics": {f"{prefix}{i}": i * 0.5}}
        for i in range(n)
    ]


def sparse_rows(n: int = N) -> list[Point]:
    return [Point(i, 1_764_456_000.0 + i, {f"k{i}": i * 0.5}) for i in range(n)]


# -- the chunk format ------------------------------------------------------------------------


def test_sparse_chunk_is_linear_in_pairs_present() -> None:
    rows = sparse_rows()
    began = time.perf_counter()
    data = encode_chunk(rows)
    decoded = decode_chunk(1, data)
    elapsed = time.perf_counter() - began
    # Version 1 wrote N x K = 36 million nulls (180 MB); a pair is a key, an index, a value.
    assert len(data) < 60 * N, len(data)
    assert elapsed < 1.0, elapsed
    assert [p.values for p in decoded] == [r.values for r in rows]
    assert [p.seq for p in decoded[:3]] == [1, 2, 3]


def test_chunk_round_trips_dense_sparse_and_special_values() -> None:
    rows = [
        Point(1, 10.0, {"loss": 1.0, "lr": 0.1}),
        Point(None, 11.0, {"loss": float("inf"), "lr": 0.2, "rare": float("nan")}),
        Point(3, 12.0, {"loss": 0.5}),
        Point(4, 13.0, {}),
    ]
    data = encode_chunk(rows)
    chunk = json.loads(data)
    assert chunk["v"] == 2
    assert set(chunk["scalars"]) == {"loss"} and set(chunk["sparse"]) == {"lr", "rare"}
    decoded = decode_chunk(7, data)
    assert [(p.seq, p.step, p.time) for p in decoded] == [
        (7, 1, 10.0), (8, None, 11.0), (9, 3, 12.0), (10, 4, 13.0)
    ]  # fmt: skip
    assert decoded[0].values == {"loss": 1.0, "lr": 0.1}
    assert decoded[1].values["loss"] == float("inf") and decoded[1].values["lr"] == 0.2
    assert str(decoded[1].values["rare"]) == "nan"
    assert decoded[2].values == {"loss": 0.5} and decoded[3].values == {}


def test_version_1_chunks_already_stored_still_decode() -> None:
    """Text exactly as the previous release's encode_chunk wrote it."""
    old = (
        '{"step":[1,2,null],"time":[10.0,11.0,12.0],'
        '"scalars":{"loss":[1.0,null,Infinity],"lr":[null,0.2,NaN]}}'
    )
    decoded = decode_chunk(5, old)
    assert [(p.seq, p.step) for p in decoded] == [(5, 1), (6, 2), (7, None)]
    assert decoded[0].values == {"loss": 1.0}
    assert decoded[1].values == {"lr": 0.2}
    assert decoded[2].values["loss"] == float("inf") and str(decoded[2].values["lr"]) == "nan"


@pytest.mark.parametrize(
    ("known", "batch", "expected"),
    [
        ({}, set(), 0),
        ({"a": 1.0}, {"a"}, 1),
        ({"a": 1.0}, {"a", "b", "c"}, 3),
        ({}, {"x", "y"}, 2),
    ],
)
def test_metric_keys_after(known: dict[str, float], batch: set[str], expected: int) -> None:
    assert metric_keys_after(known, batch) == expected


def test_loss_is_not_a_metric_key() -> None:
    rows = [Point(1, 1.0, {"loss": 1.0, "a": 2.0}), Point(2, 2.0, {"b": 1.0})]
    assert batch_metric_keys(rows) == {"a", "b"}


# -- the store, on SQLite and PostgreSQL ----------------------------------------------------


def db_size(directory: Path) -> int:
    """The SQLite database with its write-ahead log (where a fresh write first lands)."""
    return sum(p.stat().st_size for p in directory.glob("test.db*"))


def test_sparse_batch_stores_fast_and_small_and_reads_back(store: Store, tmp_path: Path) -> None:
    service = JobService(store, max_metric_keys=10_000)
    job, _ = service.create_job(JobCreate(name="sparse"))
    size_before = db_size(tmp_path)
    began = time.perf_counter()
    result = service.report(job.id, ProgressReport("r", 1, sparse_rows()))
    ingest = time.perf_counter() - began
    assert result.applied and result.job.point_count == N and len(result.job.metrics) == N
    assert ingest < 2.0, ingest  # was 32.9 s
    if store.dialect == "sqlite":
        assert db_size(tmp_path) - size_before < 5 * 1024 * 1024  # was 317 MB
    began = time.perf_counter()
    found = service.points(job.id, 2_000, 10)
    assert time.perf_counter() - began < 1.0  # was 48.8 s
    assert [p.seq for p in found] == list(range(2_001, 2_011))
    assert found[0].values == {"k2000": 1000.0} and found[0].step == 2_000


def test_over_the_key_limit_refuses_the_whole_batch(store: Store) -> None:
    service = JobService(store, max_metric_keys=10)
    job, _ = service.create_job(JobCreate(name="limited"))
    rows = [Point(i, float(i), {f"m{i}": 1.0, "loss": 0.5}) for i in range(8)]
    assert service.report(job.id, ProgressReport("r", 1, rows)).applied
    over = [Point(i, float(i), {f"n{i}": 1.0}) for i in range(3)]  # 8 + 3 = 11 > 10
    with pytest.raises(ValidationFailed, match="11 distinct metric keys; the limit is 10"):
        service.report(job.id, ProgressReport("r", 2, over))
    after = service.get_job(job.id)
    assert after.point_count == 8 and len(after.metrics) == 8
    assert len(service.points(job.id, None, 100)) == 8
    # Nothing of the refused batch was kept, its seq included: a smaller batch may reuse it.
    reuse = [Point(9, 9.0, {"m0": 2.0, "n0": 1.0, "n1": 1.0})]
    assert service.report(job.id, ProgressReport("r", 2, reuse)).applied
    assert len(service.get_job(job.id).metrics) == 10


# -- the API --------------------------------------------------------------------------------


@pytest.fixture
def limited_client(tmp_path: Path, db_url: str) -> Any:
    app = create_app(make_settings(tmp_path, db_url, max_metric_keys=1_000))
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        test_client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield test_client


def test_api_refuses_a_batch_past_1000_keys_with_422(limited_client: TestClient) -> None:
    job = limited_client.post(JOBS, json={"name": "sparse"}).json()
    url = f"{JOBS}/{job['id']}/progress"
    response = limited_client.post(url, json={"seq": 1, "points": sparse_points(1_001)})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["field"] == "points"
    assert "the limit is 1000" in error["message"] and "max_metric_keys" in error["message"]
    stored = limited_client.get(f"{JOBS}/{job['id']}/metrics").json()["points"]
    assert stored == [] and limited_client.get(f"{JOBS}/{job['id']}").json()["metrics"] == {}
    ok = limited_client.post(url, json={"seq": 1, "points": sparse_points(1_000)})
    assert ok.status_code == 200 and ok.json()["applied"] is True
    one_more = limited_client.post(url, json={"seq": 2, "points": sparse_points(1, "new")})
    assert one_more.status_code == 422, one_more.text
    known = limited_client.post(url, json={"seq": 3, "points": sparse_points(5)})
    assert known.status_code == 200, known.text


@pytest.mark.parametrize(("length", "status"), [(200, 200), (201, 422)])
def test_metric_key_names_up_to_200_characters(
    limited_client: TestClient, length: int, status: int
) -> None:
    job = limited_client.post(JOBS, json={"name": "long"}).json()
    body = {"seq": 1, "points": [{"step": 1, "metrics": {"x" * length: 1.0}}]}
    response = limited_client.post(f"{JOBS}/{job['id']}/progress", json=body)
    assert response.status_code == status, response.text
    if status == 422:
        assert "200 characters" in response.json()["error"]["message"]


def test_max_metric_keys_from_flag_env_and_default(tmp_path: Path) -> None:
    env = {"TRAINMON_DATA_DIR": str(tmp_path)}
    assert build_settings(env=env).max_metric_keys == 1_000
    assert build_settings(env={**env, "TRAINMON_MAX_METRIC_KEYS": "50"}).max_metric_keys == 50
    flagged = build_settings(
        env={**env, "TRAINMON_MAX_METRIC_KEYS": "50"}, limits={"max_metric_keys": 7}
    )
    assert flagged.max_metric_keys == 7
    with pytest.raises(SettingsError, match="TRAINMON_MAX_METRIC_KEYS must be a number"):
        build_settings(env={**env, "TRAINMON_MAX_METRIC_KEYS": "lots"})
    with pytest.raises(SettingsError, match="must be above 0"):
        build_settings(env={**env, "TRAINMON_MAX_METRIC_KEYS": "0"})


# -- a real server: one job's sparse batch does not stall another's reports -----------------


def test_sparse_batch_does_not_stall_another_jobs_reports(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "d", executor=False, extra_args=("--max-metric-keys", "10000"))
    server.data_dir.mkdir(parents=True)
    server.start()
    try:
        with server.client() as client:
            big = client.post(JOBS, json={"name": "big"}).json()["id"]
            small = client.post(JOBS, json={"name": "small"}).json()["id"]
            body = json.dumps({"seq": 1, "points": sparse_points()}).encode()
            outcome: dict[str, Any] = {}

            def send_big() -> None:
                with server.client() as other:
                    began = time.perf_counter()
                    response = other.post(
                        f"{JOBS}/{big}/progress",
                        content=body,
                        headers={"Content-Type": "application/json"},
                        timeout=120,
                    )
                    outcome["seconds"] = time.perf_counter() - began
                    outcome["status"] = response.status_code

            sender = threading.Thread(target=send_big)
            sender.start()
            latencies: list[float] = []
            seq = 0
            while sender.is_alive() or seq < 20:
                seq += 1
                began = time.perf_counter()
                point = {"step": seq, "loss": 1.0 / seq}
                answer = client.post(
                    f"{JOBS}/{small}/progress", json={"seq": seq, "points": [point]}
                )
                latencies.append(time.perf_counter() - began)
                assert answer.status_code == 200, answer.text
            sender.join(timeout=120)
            assert outcome.get("status") == 200, (outcome, server.output())
            assert outcome["seconds"] < 5.0, outcome  # was 32.9 s
            # Was 12 s; the bench measures the real figure (target 50 ms) on a quiet machine.
            assert max(latencies) < 1.0, sorted(latencies)[-5:]
            began = time.perf_counter()
            found = client.get(f"{JOBS}/{big}/metrics", params={"after": 3_000, "limit": 10})
            assert found.status_code == 200 and len(found.json()["points"]) == 10
            assert time.perf_counter() - began < 2.0
    except httpx.HTTPError:
        pytest.fail(f"server output:\n{server.output()}")
    finally:
        server.close()
