"""Breadth of the job routes in process (docs/API.md), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

JOBS = "/api/training/jobs"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
JOB_KEYS = {
    "id", "name", "status", "progress", "currentStep", "totalSteps", "currentLoss", "metrics",
    "createdAt", "startedAt", "finishedAt", "updatedAt", "lastSeenAt", "stepAt", "stale",
    "cancelRequested", "exitCode", "error", "executor", "config", "tags", "command",
}  # fmt: skip


def create(client: TestClient, name: str = "job", **body: Any) -> dict[str, Any]:
    response = client.post(JOBS, json={"name": name, **body})
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def report(client: TestClient, job_id: str, seq: int, **body: Any) -> dict[str, Any]:
    response = client.post(f"{JOBS}/{job_id}/progress", json={"seq": seq, **body})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def get(client: TestClient, job_id: str) -> dict[str, Any]:
    response = client.get(f"{JOBS}/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def points(client: TestClient, job_id: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"{JOBS}/{job_id}/metrics", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["points"]
    return found


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]


def make_job_in(client: TestClient, status: str, name: str | None = None) -> dict[str, Any]:
    """A job brought to ``status`` through the API only."""
    name = name or f"{status}-job"
    if status == "queued":
        return create(client, name, command={"argv": ["python", "-c", "pass"]})
    job = create(client, name)
    if status == "pending":
        return job
    if status == "cancelled":
        response = client.post(f"{JOBS}/{job['id']}/cancel")
        assert response.status_code == 200
        return dict(response.json())
    report(client, job["id"], 0, status="running")
    if status in ("completed", "failed"):
        report(client, job["id"], 1, status=status, exitCode=0 if status == "completed" else 1)
    return get(client, job["id"])


# -- create and get ------------------------------------------------------------------------


def test_create_answers_201_with_the_documented_job(client: TestClient) -> None:
    job = create(client, "llama-lora-r16", totalSteps=10_000, config={"lr": 3e-4}, tags=["a"])
    assert set(job) >= JOB_KEYS
    assert re.fullmatch(r"[0-9a-f]{12}", job["id"])
    assert job["name"] == "llama-lora-r16"
    assert job["status"] == "pending"
    assert job["executor"] == "sdk"
    assert job["progress"] == 0.0
    assert job["totalSteps"] == 10_000
    assert job["currentStep"] is None and job["currentLoss"] is None
    assert job["config"] == {"lr": 3e-4} and job["tags"] == ["a"] and job["metrics"] == {}
    assert job["cancelRequested"] is False and job["stale"] is False
    assert job["command"] is None and job["exitCode"] is None and job["error"] is None
    assert ISO_Z.match(job["createdAt"]) and ISO_Z.match(job["updatedAt"])
    assert job["startedAt"] is None and job["finishedAt"] is None and job["lastSeenAt"] is None


def test_create_strips_the_name(client: TestClient) -> None:
    assert create(client, "  padded  ")["name"] == "padded"


def test_create_with_a_command_is_queued_for_the_local_executor(client: TestClient) -> None:
    command = {"argv": ["python", "train.py"], "cwd": "/tmp", "env": {"SEED": "1"}}
    job = create(client, "runner", command=command)
    assert job["status"] == "queued"
    assert job["executor"] == "local"
    assert job["command"] == command


def test_repeated_create_with_the_same_id_returns_the_first_job(client: TestClient) -> None:
    first = create(client, "same", id="client-chosen-1")
    assert first["id"] == "client-chosen-1"
    again = client.post(JOBS, json={"name": "same", "id": "client-chosen-1", "totalSteps": 5})
    assert again.status_code == 200
    assert again.json() == first
    assert client.get(JOBS).json()["total"] == 1


def test_create_with_an_id_taken_by_another_name_is_409(client: TestClient) -> None:
    create(client, "first", id="client-chosen-2")
    response = client.post(JOBS, json={"name": "second", "id": "client-chosen-2"})
    assert_error(response, 409, "conflict")
    assert get(client, "client-chosen-2")["name"] == "first"


def test_get_and_status_by_query_answer_the_same_job(client: TestClient) -> None:
    job = create(client, "twin", totalSteps=4)
    report(client, job["id"], 0, status="running", points=[{"step": 1, "loss": 0.5}])
    by_path = get(client, job["id"])
    by_query = client.get("/api/training/status", params={"job_id": job["id"]})
    assert by_query.status_code == 200
    assert by_query.json() == by_path
    assert by_path["currentStep"] == 1 and by_path["progress"] == 25.0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{JOBS}/000000000000"),
        ("GET", "/api/training/status?job_id=000000000000"),
        ("POST", f"{JOBS}/000000000000/cancel"),
        ("GET", f"{JOBS}/000000000000/metrics"),
    ],
)
def test_unknown_job_is_404(client: TestClient, method: str, path: str) -> None:
    assert_error(client.request(method, path), 404, "not_found")


def test_progress_for_an_unknown_job_is_404_and_stores_nothing(client: TestClient) -> None:
    response = client.post(f"{JOBS}/000000000000/progress", json={"seq": 0, "points": [{}]})
    assert_error(response, 404, "not_found")
    assert client.get(JOBS).json()["total"] == 0


# -- list, filter, paginate ------------------------------------------------------------------


def test_list_is_newest_first_with_total(client: TestClient) -> None:
    ids = [create(client, f"j{i}")["id"] for i in range(5)]
    page = client.get(JOBS).json()
    assert [job["id"] for job in page["jobs"]] == ids[::-1]
    assert page["total"] == 5
    assert page["nextCursor"] is None


def test_list_of_an_empty_store(client: TestClient) -> None:
    assert client.get(JOBS).json() == {
        "jobs": [],
        "total": 0,
        "totalExact": True,
        "nextCursor": None,
    }


def test_list_filters_by_one_status_and_by_active(client: TestClient) -> None:
    made = {s: make_job_in(client, s)["id"] for s in
            ("pending", "queued", "running", "completed", "failed", "cancelled")}  # fmt: skip
    for status, job_id in made.items():
        page = client.get(JOBS, params={"status": status}).json()
        assert [job["id"] for job in page["jobs"]] == [job_id], status
        assert page["total"] == 1
    active = client.get(JOBS, params={"status": "active"}).json()
    assert {job["id"] for job in active["jobs"]} == {
        made["pending"],
        made["queued"],
        made["running"],
    }
    assert active["total"] == 3
    assert client.get(JOBS, params={"status": ""}).json()["total"] == 6


def walk(client: TestClient, **params: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Every page from the first to the one without ``nextCursor``."""
    ids: list[str] = []
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(JOBS, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        ids += [job["id"] for job in page["jobs"]]
        cursor = page["nextCursor"]
        if cursor is None:
            return ids, pages
        assert len(pages) < 100, "the cursor never ends"


def test_cursor_walks_every_job_once_newest_first(client: TestClient) -> None:
    ids = [create(client, f"j{i}")["id"] for i in range(23)]
    walked, pages = walk(client, limit=5)
    assert walked == ids[::-1]
    assert [len(page["jobs"]) for page in pages] == [5, 5, 5, 5, 3]
    assert all(page["total"] == 23 for page in pages)


def test_cursor_ends_without_an_empty_page_when_the_limit_divides(client: TestClient) -> None:
    ids = [create(client, f"j{i}")["id"] for i in range(10)]
    walked, pages = walk(client, limit=5)
    assert walked == ids[::-1]
    assert len(pages) == 2


def test_cursor_with_a_status_filter(client: TestClient) -> None:
    wanted = []
    for i in range(9):
        job = create(client, f"j{i}")
        if i % 3 == 0:
            client.post(f"{JOBS}/{job['id']}/cancel")
        else:
            wanted.append(job["id"])
    walked, pages = walk(client, limit=4, status="pending")
    assert walked == wanted[::-1]
    assert all(page["total"] == 6 for page in pages)


def test_cursor_is_stable_while_new_jobs_arrive(client: TestClient) -> None:
    old = [create(client, f"old{i}")["id"] for i in range(6)]
    first = client.get(JOBS, params={"limit": 3}).json()
    create(client, "newcomer")
    rest = client.get(JOBS, params={"limit": 3, "cursor": first["nextCursor"]}).json()
    assert [j["id"] for j in first["jobs"] + rest["jobs"]] == old[::-1]


def test_default_page_is_100_and_limit_500_is_allowed(client: TestClient) -> None:
    for i in range(101):
        create(client, f"j{i}")
    page = client.get(JOBS).json()
    assert len(page["jobs"]) == 100 and page["total"] == 101 and page["nextCursor"]
    assert len(client.get(JOBS, params={"limit": 500}).json()["jobs"]) == 101


# -- cancel ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "queued"])
def test_cancel_before_start_ends_the_job_at_once(client: TestClient, status: str) -> None:
    job = make_job_in(client, status)
    response = client.post(f"{JOBS}/{job['id']}/cancel")
    assert response.status_code == 200
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelRequested"] is True
    assert ISO_Z.match(cancelled["finishedAt"])
    assert get(client, job["id"]) == cancelled


def test_cancel_of_a_running_job_only_asks_it_to_stop(client: TestClient) -> None:
    job = make_job_in(client, "running")
    response = client.post(f"{JOBS}/{job['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "running"
    assert response.json()["cancelRequested"] is True
    assert response.json()["finishedAt"] is None
    # The reporter learns it from its next batch, then reports the end.
    answer = report(client, job["id"], 5, points=[{"step": 3}])
    assert answer == {"applied": True, "cancelRequested": True, "status": "running"}
    answer = report(client, job["id"], 6, status="cancelled")
    assert answer["status"] == "cancelled"
    assert get(client, job["id"])["finishedAt"] is not None


def test_repeated_cancel_of_a_running_job_is_harmless(client: TestClient) -> None:
    job = make_job_in(client, "running")
    first = client.post(f"{JOBS}/{job['id']}/cancel")
    second = client.post(f"{JOBS}/{job['id']}/cancel")
    assert first.status_code == second.status_code == 200
    assert second.json()["status"] == "running" and second.json()["cancelRequested"] is True
    assert {k: v for k, v in second.json().items() if k != "updatedAt"} == {
        k: v for k, v in first.json().items() if k != "updatedAt"
    }


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_cancel_of_a_finished_job_is_409_and_changes_nothing(
    client: TestClient, status: str
) -> None:
    job = make_job_in(client, status)
    before = get(client, job["id"])
    assert_error(client.post(f"{JOBS}/{job['id']}/cancel"), 409, "conflict")
    assert get(client, job["id"]) == before


# -- progress batches ------------------------------------------------------------------------


def test_a_batch_of_1500_points_is_stored_whole_and_in_order(client: TestClient) -> None:
    job = create(client, "big", totalSteps=3000)
    batch = [
        {"step": i, "time": 1_764_456_000.0 + i, "loss": 1.0 / (i + 1), "metrics": {"lr": i * 1e-6}}
        for i in range(1500)
    ]
    assert report(client, job["id"], 0, status="running", points=batch)["applied"] is True
    stored = points(client, job["id"])
    assert [p["step"] for p in stored] == list(range(1500))
    assert stored[10]["loss"] == pytest.approx(1 / 11)
    assert stored[10]["metrics"] == {"lr": pytest.approx(10e-6)}
    assert stored[10]["time"] == pytest.approx(1_764_456_010.0)
    after = get(client, job["id"])
    assert after["currentStep"] == 1499
    assert after["currentLoss"] == pytest.approx(1 / 1500)
    assert after["metrics"] == {"lr": pytest.approx(1499e-6)}
    assert after["progress"] == pytest.approx(49.967, abs=1e-3)


def test_a_resent_batch_is_applied_once(client: TestClient) -> None:
    job = create(client, "resend")
    batch = {"reporter": "sdk-1", "points": [{"step": 1, "loss": 0.9}, {"step": 2, "loss": 0.8}]}
    assert report(client, job["id"], 7, **batch)["applied"] is True
    state = get(client, job["id"])
    again = report(client, job["id"], 7, **batch)
    assert again == {"applied": False, "cancelRequested": False, "status": "pending"}
    assert len(points(client, job["id"])) == 2
    assert get(client, job["id"]) == state
    # The same seq from another reporter is another batch.
    assert report(client, job["id"], 7, reporter="sdk-2", points=[{"step": 3}])["applied"]
    assert len(points(client, job["id"])) == 3


def test_sequence_numbers_are_per_job(client: TestClient) -> None:
    one, two = create(client, "one"), create(client, "two")
    assert report(client, one["id"], 1, reporter="r", points=[{"step": 1}])["applied"]
    assert report(client, two["id"], 1, reporter="r", points=[{"step": 1}])["applied"]


@pytest.mark.parametrize("special", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_loss_and_metrics_round_trip_as_strings(
    client: TestClient, special: str
) -> None:
    job = create(client, "diverged")
    report(
        client, job["id"], 0,
        points=[{"step": 1, "loss": special, "metrics": {"grad_norm": special, "lr": 0.1}}],
    )  # fmt: skip
    stored = points(client, job["id"])
    assert stored[0]["loss"] == special
    assert stored[0]["metrics"] == {"grad_norm": special, "lr": 0.1}
    after = get(client, job["id"])
    assert after["currentLoss"] == special
    assert after["metrics"] == {"grad_norm": special, "lr": 0.1}
    # The batch-level loss takes the same values.
    report(client, job["id"], 1, loss=special, currentStep=2)
    assert get(client, job["id"])["currentLoss"] == special


def test_a_finite_loss_after_a_nan_replaces_it(client: TestClient) -> None:
    job = create(client, "recovers")
    report(client, job["id"], 0, points=[{"step": 1, "loss": "NaN"}])
    report(client, job["id"], 1, points=[{"step": 2, "loss": 0.25}])
    assert get(client, job["id"])["currentLoss"] == 0.25


@pytest.mark.parametrize(
    ("total", "step", "expected"),
    [(200, 50, 25.0), (3, 1, 33.333), (10, 10, 100.0), (10, 25, 100.0), (None, 7, 0.0)],
)
def test_progress_is_derived_from_steps(
    client: TestClient, total: int | None, step: int, expected: float
) -> None:
    job = create(client, "derived", **({"totalSteps": total} if total else {}))
    report(client, job["id"], 0, currentStep=step)
    after = get(client, job["id"])
    assert after["progress"] == pytest.approx(expected, abs=1e-3)
    assert after["currentStep"] == step and after["totalSteps"] == total


def test_total_steps_reported_later_and_progress_at_completion(client: TestClient) -> None:
    job = create(client, "later")
    report(client, job["id"], 0, status="running", points=[{"step": 9}], totalSteps=40)
    assert get(client, job["id"])["progress"] == 22.5
    report(client, job["id"], 1, status="completed", exitCode=0)
    done = get(client, job["id"])
    assert done["progress"] == 100.0  # a loop reporting 0..n-1 has done all n
    assert done["exitCode"] == 0


def test_the_largest_step_is_stored(client: TestClient) -> None:
    big = 2**63 - 1
    job = create(client, "huge", totalSteps=big)
    report(client, job["id"], big, points=[{"step": big}], currentStep=big)
    assert get(client, job["id"])["currentStep"] == big
    assert points(client, job["id"])[0]["step"] == big


def test_a_script_moves_its_job_through_running_to_completed(client: TestClient) -> None:
    job = create(client, "script", totalSteps=2)
    started = report(client, job["id"], 0, status="running")
    assert started["status"] == "running"
    running = get(client, job["id"])
    assert ISO_Z.match(running["startedAt"]) and ISO_Z.match(running["lastSeenAt"])
    assert running["finishedAt"] is None
    report(client, job["id"], 1, status="running", points=[{"step": 1}])  # same status: no-op
    assert get(client, job["id"])["startedAt"] == running["startedAt"]
    report(client, job["id"], 2, status="completed", exitCode=0)
    done = get(client, job["id"])
    assert done["status"] == "completed" and ISO_Z.match(done["finishedAt"])
    assert done["startedAt"] == running["startedAt"]


def test_a_failure_keeps_its_error_and_exit_code(client: TestClient) -> None:
    job = make_job_in(client, "running")
    report(client, job["id"], 9, status="failed", error="ValueError: boom", exitCode=3)
    failed = get(client, job["id"])
    assert failed["status"] == "failed"
    assert failed["error"] == "ValueError: boom" and failed["exitCode"] == 3


@pytest.mark.parametrize("start", ["pending", "queued"])
def test_completed_before_running_is_409_and_the_batch_is_refused(
    client: TestClient, start: str
) -> None:
    job = make_job_in(client, start)
    response = client.post(
        f"{JOBS}/{job['id']}/progress",
        json={"seq": 0, "status": "completed", "points": [{"step": 1}]},
    )
    assert_error(response, 409, "conflict")
    assert get(client, job["id"])["status"] == start
    assert points(client, job["id"]) == []  # the whole batch is refused
    # The refused (reporter, seq) was not used up: a corrected resend applies.
    assert report(client, job["id"], 0, points=[{"step": 1}])["applied"] is True


@pytest.mark.parametrize(("start", "target"), [("pending", "failed"), ("pending", "cancelled")])
def test_a_script_may_end_its_job_before_running(
    client: TestClient, start: str, target: str
) -> None:
    job = make_job_in(client, start)
    assert report(client, job["id"], 0, status=target, error="import failed")["status"] == target
    assert get(client, job["id"])["finishedAt"] is not None


@pytest.mark.parametrize("final", ["completed", "failed", "cancelled"])
def test_a_late_batch_to_a_finished_job_stores_points_but_keeps_its_status(
    client: TestClient, final: str
) -> None:
    job = make_job_in(client, final)
    before = get(client, job["id"])
    answer = report(
        client, job["id"], 100, reporter="journal", status="running", points=[{"step": 5}]
    )
    assert answer["applied"] is True and answer["status"] == final
    after = get(client, job["id"])
    assert after["status"] == final
    assert after["finishedAt"] == before["finishedAt"]
    assert [p["step"] for p in points(client, job["id"])] == [5]


def test_an_empty_batch_is_a_heartbeat(client: TestClient) -> None:
    job = create(client, "beat")
    assert get(client, job["id"])["lastSeenAt"] is None
    assert report(client, job["id"], 0)["applied"] is True
    beat = get(client, job["id"])
    assert ISO_Z.match(beat["lastSeenAt"])
    assert beat["status"] == "pending" and points(client, job["id"]) == []


def test_output_progress_is_ignored_once_an_sdk_reports(client: TestClient) -> None:
    job = create(client, "tqdm", totalSteps=100)
    report(client, job["id"], 0, reporter="supervisor", source="output", currentStep=10)
    assert get(client, job["id"])["currentStep"] == 10
    report(client, job["id"], 0, reporter="sdk", currentStep=20)
    report(client, job["id"], 1, reporter="supervisor", source="output", currentStep=90)
    assert get(client, job["id"])["currentStep"] == 20


# -- metrics history -------------------------------------------------------------------------


def test_metrics_history_pages_with_after(client: TestClient) -> None:
    job = create(client, "history")
    for seq in range(5):
        report(client, job["id"], seq, points=[{"step": seq * 5 + i} for i in range(5)])
    seen: list[int] = []
    after = None
    pages = 0
    while True:
        params = {"limit": 7, **({"after": after} if after is not None else {})}
        body = client.get(f"{JOBS}/{job['id']}/metrics", params=params).json()
        assert body["jobId"] == job["id"]
        seen += [p["step"] for p in body["points"]]
        pages += 1
        after = body["nextAfter"]
        if after is None:
            break
        assert body["points"][-1]["seq"] == after
    assert seen == list(range(25))
    assert pages == 4


def test_metrics_after_the_last_point_is_empty(client: TestClient) -> None:
    job = create(client, "tail")
    report(client, job["id"], 0, points=[{"step": 1}, {"step": 2}])
    last = points(client, job["id"])[-1]["seq"]
    body = client.get(f"{JOBS}/{job['id']}/metrics", params={"after": last}).json()
    assert body["points"] == [] and body["nextAfter"] is None


def test_metric_points_carry_iso_time(client: TestClient) -> None:
    job = create(client, "timed")
    report(client, job["id"], 0, points=[{"step": 1, "time": 1_764_456_484.12}, {"step": 2}])
    first, second = points(client, job["id"])
    assert first["time"] == pytest.approx(1_764_456_484.12)
    assert first["at"].startswith("2025-11-29T22:48:04.12") and first["at"].endswith("Z")
    assert second["time"] > 0  # no time: the server's clock


def test_metrics_are_kept_per_job(client: TestClient) -> None:
    one, two = create(client, "one"), create(client, "two")
    report(client, one["id"], 0, points=[{"step": 1}, {"step": 2}])
    assert points(client, two["id"]) == []
    report(client, two["id"], 0, points=[{"step": 1}])
    # Numbered from 1 per job, oldest first.
    assert [p["seq"] for p in points(client, one["id"])] == [1, 2]
    assert [p["seq"] for p in points(client, two["id"])] == [1]


# -- filter, search, sort (issue 11) -------------------------------------------------------


def finished(client: TestClient, name: str, status: str, loss: float, **body: Any) -> str:
    job_id = create(client, name, **body)["id"]
    report(client, job_id, 0, status="running", currentStep=5, totalSteps=10, loss=loss)
    report(
        client,
        job_id,
        1,
        status=status,
        **({"error": f"{name} broke"} if status == "failed" else {}),
    )
    return job_id


def ids_of(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["jobs"]]


def test_filters_combine_over_http(client: TestClient) -> None:
    a = finished(client, "llama-lora-a", "failed", 0.9, tags=["sweep-3", "lora"])
    b = finished(client, "llama-lora-b", "cancelled", 0.2, tags=["sweep-3"])
    c = finished(client, "mlp", "completed", 0.5, tags=["sweep-3"])
    d = create(client, "llama-queued", tags=["lora"])["id"]
    both = {"status": "failed,cancelled"}
    assert set(ids_of(client.get(JOBS, params=both))) == {a, b}
    assert ids_of(client.get(JOBS, params={**both, "sort": "loss"})) == [b, a]
    assert ids_of(client.get(JOBS, params={"q": "LORA", "sort": "name"})) == [a, b, d]
    assert ids_of(client.get(JOBS, params=[("tag", "sweep-3"), ("tag", "lora")])) == [a]
    assert ids_of(client.get(JOBS, params={"q": "a broke"})) == [a], "the error text is searched"
    assert ids_of(client.get(JOBS, params={"status": "finished", "sort": "-loss"})) == [a, c, b]
    assert ids_of(client.get(JOBS, params={"status": "active", "q": "llama"})) == [d]
    assert set(ids_of(client.get(JOBS, params={"ids": f"{a},{d}"}))) == {a, d}
    page = client.get(JOBS, params={"tag": "sweep-3", "limit": 2}).json()
    assert page["total"] == 3 and page["totalExact"] is True
    rest = client.get(JOBS, params={"tag": "sweep-3", "limit": 2, "cursor": page["nextCursor"]})
    assert ids_of(rest) == [a]


def test_created_since_and_until(client: TestClient) -> None:
    job = create(client, "now")
    assert ids_of(client.get(JOBS, params={"createdSince": "2000-01-01"})) == [job["id"]]
    assert ids_of(client.get(JOBS, params={"createdSince": "2999-01-01T00:00:00Z"})) == []
    assert ids_of(client.get(JOBS, params={"createdUntil": "2000-01-01T00:00:00Z"})) == []
    assert ids_of(client.get(JOBS, params={"createdUntil": "2999-01-01T00:00:00+02:00"})) == [
        job["id"]
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"sort": "size"}, "sort"), ({"sort": "-"}, "sort"), ({"status": "done"}, "status"),
     ({"createdSince": "yesterday"}, "createdSince"), ({"createdUntil": "2026-02-30"},
     "createdUntil"), ({"q": "x" * 500}, "q"), ({"ids": "not an id"}, "ids"),
     ({"tag": [f"t{i}" for i in range(11)]}, "tag")],
)  # fmt: skip
def test_bad_list_parameters_are_422_with_the_field(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    response = client.get(JOBS, params=params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["field"] == field, error


def test_a_cursor_is_bound_to_its_query(client: TestClient) -> None:
    for i in range(4):
        create(client, f"j{i}")
    cursor = client.get(JOBS, params={"limit": 2, "sort": "name"}).json()["nextCursor"]
    assert (
        client.get(JOBS, params={"limit": 2, "sort": "name", "cursor": cursor}).status_code == 200
    )
    for other in ({"sort": "-name"}, {"sort": "createdAt"}, {"sort": "name", "q": "j"}):
        response = client.get(JOBS, params={"limit": 2, "cursor": cursor, **other})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["field"] == "cursor" and "another query" in error["message"]
