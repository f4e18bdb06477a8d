"""``trainmon ls/status/cancel`` through click's runner, against a real server process."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner, Result

from live import LiveServer, free_port
from trainmon.cli import main
from trainmon.cli.jobs import since_param

JOBS = "/api/training/jobs"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module (startup is the slow part); tests use names of their own."""
    live = LiveServer(tmp_path_factory.mktemp("cli") / "d", executor=False)
    live.data_dir.mkdir(parents=True)
    live.start()
    yield live
    live.stop()
    live._log.close()  # LiveServer leaves its log file open (a ResourceWarning when collected)


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def run(server_url: str, *args: str, token: str = "test-token-0123456789") -> Result:
    env = {"TRAINMON_URL": server_url, "TRAINMON_TOKEN": token, "COLUMNS": "200"}
    return CliRunner().invoke(main, list(args), env=env)


def new_job(api: httpx.Client, status: str = "pending", **body: Any) -> dict[str, Any]:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    job: dict[str, Any] = api.post(JOBS, json={"name": name, **body}).json()
    if status in ("running", "completed", "failed"):
        api.post(f"{JOBS}/{job['id']}/progress", json={"seq": 0, "status": "running"})
    if status in ("completed", "failed"):
        api.post(f"{JOBS}/{job['id']}/progress", json={"seq": 1, "status": status})
    return dict(api.get(f"{JOBS}/{job['id']}").json())


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -- ls -----------------------------------------------------------------------------------------


def test_ls_prints_a_table_newest_first(server: LiveServer, api: httpx.Client) -> None:
    older = new_job(api, totalSteps=200)
    newer = new_job(api, "running", totalSteps=200)
    api.post(f"{JOBS}/{newer['id']}/progress", json={"seq": 1, "currentStep": 50, "loss": 0.4213})
    result = run(server.url, "ls")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATUS", "PROGRESS", "STEPS", "LOSS", "ELAPSED"]
    newer_line = next(line for line in lines if newer["id"] in line)
    older_line = next(line for line in lines if older["id"] in line)
    assert lines.index(newer_line) < lines.index(older_line)
    assert newer["name"] in newer_line and "running" in newer_line and "25.0%" in newer_line
    assert "50" in newer_line and "0.42" in newer_line
    assert older["name"] in older_line and "pending" in older_line and "0.0%" in older_line
    assert "\x1b[" not in result.output  # no colour codes when not a terminal


@pytest.mark.parametrize("name", ["llama[bs=32]", "sweep [red]lr", "data[/x]"])
def test_ls_shows_names_verbatim(tmp_path: Path, name: str) -> None:
    """A job name is text, not Rich markup: brackets neither vanish nor crash the table.
    Its own server: a name that breaks ``ls`` must not break the other tests' listings."""
    own = LiveServer(tmp_path / "own", executor=False)
    own.data_dir.mkdir(parents=True)
    own.start()
    try:
        with own.client() as client:
            job = client.post(JOBS, json={"name": name}).json()
        result = run(own.url, "ls")
    finally:
        own.stop()
        own._log.close()
    assert result.exit_code == 0, (result.output, result.exception)
    assert name in next(line for line in result.output.splitlines() if job["id"] in line)


def test_ls_json_is_the_api_page(server: LiveServer, api: httpx.Client) -> None:
    job = new_job(api)
    result = run(server.url, "ls", "--json", "--limit", "500")
    assert result.exit_code == 0, result.output
    page = json.loads(result.output)
    assert set(page) == {"jobs", "total", "totalExact", "nextCursor"}
    assert job["id"] in [j["id"] for j in page["jobs"]]


def test_ls_filters_by_status(server: LiveServer, api: httpx.Client) -> None:
    failed, pending = new_job(api, "failed"), new_job(api)
    result = run(server.url, "ls", "--status", "failed", "--json", "--limit", "500")
    statuses = {j["status"] for j in json.loads(result.output)["jobs"]}
    ids = {j["id"] for j in json.loads(result.output)["jobs"]}
    assert statuses == {"failed"} and failed["id"] in ids and pending["id"] not in ids


def test_ls_says_so_when_nothing_matches(server: LiveServer) -> None:
    result = run(server.url, "ls", "--status", "queued")  # nothing here is ever queued
    assert result.exit_code == 0
    assert result.output.startswith("No jobs match.")


def test_ls_searches_tags_since_sorts_and_pages_through_all(
    server: LiveServer, api: httpx.Client
) -> None:
    tagged = [new_job(api, "failed", name=f"lora-{i}", tags=["sweep-9"]) for i in range(3)]
    other = new_job(api, name="plain-mlp")
    result = run(server.url, "ls", "--tag", "sweep-9", "--q", "LORA", "--since", "1h",
                 "--sort", "name", "--limit", "1", "--all", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [j["id"] for j in json.loads(result.output)["jobs"]] == [j["id"] for j in tagged]
    result = run(server.url, "ls", "--status", "failed,cancelled", "--q", "plain", "--json")
    assert other["id"] not in result.output
    result = run(server.url, "ls", "--since", "2999-01-01", "--json")
    assert json.loads(result.output)["jobs"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--since", "yesterday"], "use a duration back from now"),
     (["--sort", "size"], "unknown sort field"), (["--status", "done,failed"], "unknown status")],
)  # fmt: skip
def test_ls_bad_filters_are_one_line(server: LiveServer, args: list[str], message: str) -> None:
    result = run(server.url, "ls", *args)
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_since_param() -> None:
    assert since_param("24h", 86_400 * 2) == "1970-01-02T00:00:00+00:00"
    assert since_param("2026-12-01", 0) == "2026-12-01"
    with pytest.raises(click.BadParameter):
        since_param("soon", 0)


def test_ls_shows_how_many_were_left_out(server: LiveServer, api: httpx.Client) -> None:
    new_job(api)
    new_job(api)
    result = run(server.url, "ls", "--limit", "1")
    assert result.exit_code == 0
    assert "1 of " in result.output and " jobs shown" in result.output


def test_ls_with_an_unknown_status_is_one_line(server: LiveServer) -> None:
    assert_one_line_error(run(server.url, "ls", "--status", "bogus"), "unknown status", "422")


# -- status -----------------------------------------------------------------------------------


def test_status_prints_the_job(server: LiveServer, api: httpx.Client) -> None:
    job = new_job(api, "failed")
    api.post(f"{JOBS}/{job['id']}/progress", json={"seq": 5, "points": []})
    result = run(server.url, "status", job["id"])
    assert result.exit_code == 0, result.output
    assert job["id"] in result.output and job["name"] in result.output
    assert "failed" in result.output


@pytest.mark.parametrize("error", ["ValueError: [bold]boom[/]", "KeyError: '[/x]'"])
def test_status_shows_the_error_of_a_failed_job_verbatim(
    server: LiveServer, api: httpx.Client, error: str
) -> None:
    job = new_job(api, "running")
    api.post(f"{JOBS}/{job['id']}/progress", json={"seq": 1, "status": "failed", "error": error})
    result = run(server.url, "status", job["id"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"error: {error}" in result.output  # text, not Rich markup


def test_status_json_is_the_api_job(server: LiveServer, api: httpx.Client) -> None:
    job = new_job(api, "running")
    result = run(server.url, "status", job["id"], "--json")
    assert result.exit_code == 0
    shown = json.loads(result.output)
    assert shown["id"] == job["id"] and shown["status"] == "running"
    assert set(shown) == set(api.get(f"{JOBS}/{job['id']}").json())


def test_status_of_an_unknown_job_is_one_line(server: LiveServer) -> None:
    assert_one_line_error(run(server.url, "status", "000000000000"), "000000000000", "404")


# -- cancel -----------------------------------------------------------------------------------


def test_cancel_of_a_pending_job_ends_it(server: LiveServer, api: httpx.Client) -> None:
    job = new_job(api)
    result = run(server.url, "cancel", job["id"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{job['id']} cancelled"
    assert api.get(f"{JOBS}/{job['id']}").json()["status"] == "cancelled"


def test_cancel_of_a_running_job_asks_it_to_stop(server: LiveServer, api: httpx.Client) -> None:
    job = new_job(api, "running")
    result = run(server.url, "cancel", job["id"])
    assert result.exit_code == 0, result.output
    assert "cancel requested" in result.output
    after = api.get(f"{JOBS}/{job['id']}").json()
    assert after["status"] == "running" and after["cancelRequested"] is True
    listed = run(server.url, "ls", "--status", "running")
    assert "cancelling" in next(line for line in listed.output.splitlines() if job["id"] in line)


def test_cancel_of_a_finished_job_is_one_line(server: LiveServer, api: httpx.Client) -> None:
    job = new_job(api, "completed")
    assert_one_line_error(run(server.url, "cancel", job["id"]), "completed", "409")


def test_cancel_of_an_unknown_job_is_one_line(server: LiveServer) -> None:
    assert_one_line_error(run(server.url, "cancel", "000000000000"), "000000000000", "404")


def test_cancel_with_a_wrong_token_is_one_line(server: LiveServer, api: httpx.Client) -> None:
    job = new_job(api)
    assert_one_line_error(run(server.url, "cancel", job["id"], token="wrong"), "401")
    assert api.get(f"{JOBS}/{job['id']}").json()["status"] == "pending"


# -- no server ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["ls"], ["ls", "--json"], ["status", "abc123abc123"], ["cancel", "abc123abc123"]]
)
def test_server_down_is_one_line(args: list[str]) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    assert_one_line_error(run(nowhere, *args), "cannot reach", nowhere)


# -- untrusted text on the terminal -------------------------------------------------------------

EVIL = "evil\x1b[2J\x1b]0;owned\x07\rfake\x9b31m"
EVIL_SHOWN = "evil^[[2J^[]0;owned^G^MfakeM-^[31m"


def assert_no_controls(output: str) -> None:
    assert not any(c in output for c in "\x1b\x07\r\x9b\x00"), repr(output)


def test_ls_and_status_show_control_characters_as_text(
    server: LiveServer, api: httpx.Client
) -> None:
    job = api.post(JOBS, json={"name": EVIL + " [red]x"}).json()
    listed = run(server.url, "ls", "--limit", "500")
    assert listed.exit_code == 0, listed.output
    assert_no_controls(listed.output)
    line = next(line for line in listed.output.splitlines() if job["id"] in line)
    assert EVIL_SHOWN + " [red]x" in line  # markup printed literally too
    shown = run(server.url, "status", job["id"])
    assert shown.exit_code == 0, shown.output
    assert_no_controls(shown.output)
    assert EVIL_SHOWN in shown.output


def test_status_error_keeps_its_lines_but_not_its_escapes(
    server: LiveServer, api: httpx.Client
) -> None:
    job = new_job(api, "running")
    error = "Traceback:\n\tboom\x1b[8m hidden\x1b[0m\r[bold]x"
    api.post(f"{JOBS}/{job['id']}/progress", json={"seq": 1, "status": "failed", "error": error})
    result = run(server.url, "status", job["id"])
    assert result.exit_code == 0, result.output
    assert_no_controls(result.output)
    # Rich expands the tab; the line break stays.
    assert "error: Traceback:\n" in result.output
    assert "boom^[[8m hidden^[[0m^M[bold]x\n" in result.output


def write_log(server: LiveServer, job_id: str, data: bytes) -> None:
    logs = server.data_dir / "logs"
    logs.mkdir(exist_ok=True)
    (logs / f"{job_id}.log").write_bytes(data)


LOG = b"epoch 1\tok\n\x1b]0;owned\x07title\n50%\r100%\n"


@pytest.mark.parametrize("args", [[], ["-n", "10"], ["-f"]])
def test_logs_escape_controls_but_keep_lines(
    server: LiveServer, api: httpx.Client, args: list[str]
) -> None:
    job = new_job(api, "completed")
    write_log(server, job["id"], LOG)
    result = run(server.url, "logs", job["id"], *args)
    assert result.exit_code == 0, result.output
    assert_no_controls(result.output)
    assert "epoch 1\tok\n" in result.output
    assert "0;owned^Gtitle\n" in result.output  # the tail comes without ESC ] already
    if "-n" not in args:  # the tail shows only the last redraw of a line
        assert "^[]0;owned^Gtitle\n50%^M100%\n" in result.output


def test_logs_raw_prints_the_bytes_as_written(server: LiveServer, api: httpx.Client) -> None:
    job = new_job(api, "completed")
    write_log(server, job["id"], LOG)
    result = run(server.url, "logs", "--raw", job["id"])
    assert result.exit_code == 0, result.output
    assert result.output == LOG.decode()


# -- rm --------------------------------------------------------------------------------------------


def test_rm_deletes_finished_jobs(server: LiveServer, api: httpx.Client) -> None:
    done, failed = new_job(api, "completed"), new_job(api, "failed")
    result = run(server.url, "rm", done["id"], failed["id"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"{done['id']} deleted", f"{failed['id']} deleted"]
    for job in (done, failed):
        assert api.get(f"{JOBS}/{job['id']}").status_code == 404


def test_rm_reports_each_job_and_fails_if_any_failed(server: LiveServer, api: httpx.Client) -> None:
    done, running = new_job(api, "completed"), new_job(api, "running")
    result = CliRunner().invoke(
        main,
        ["rm", running["id"], "000000000000", done["id"]],
        env={"TRAINMON_URL": server.url, "TRAINMON_TOKEN": "test-token-0123456789"},
    )
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{running['id']}: ") and "running" in lines[0]
    assert "cancel" in lines[0] and "409" in lines[0]  # the server's own message
    assert lines[1].startswith("000000000000: ") and "404" in lines[1]
    assert lines[2] == f"{done['id']} deleted"
    assert lines[3] == "Error: 2 of 3 jobs not deleted"
    assert "Traceback" not in result.output
    assert api.get(f"{JOBS}/{running['id']}").json()["status"] == "running"
    assert api.get(f"{JOBS}/{done['id']}").status_code == 404


def test_rm_needs_an_id(server: LiveServer) -> None:
    result = run(server.url, "rm")
    assert result.exit_code == 2 and "Missing argument" in result.output


def test_every_command_is_registered_under_its_own_name() -> None:
    from trainmon.cli import COMMANDS

    with click.Context(main) as ctx:
        for name in COMMANDS:
            command = main.get_command(ctx, name)
            assert command is not None and command.name == name
        assert main.get_command(ctx, "nope") is None
    assert CliRunner().invoke(main, ["nope"]).exit_code == 2


# -- demo --------------------------------------------------------------------------------------


def test_the_demo_keeps_its_last_finished_jobs_and_deletes_the_rest(
    server: LiveServer, api: httpx.Client
) -> None:
    from trainmon.cli.demo import prune_demo
    from trainmon.client import ApiClient

    finished = [new_job(api, "completed", tags=["demo"])["id"] for _ in range(5)]
    running = new_job(api, "running", tags=["demo"])["id"]
    other = new_job(api, "failed", tags=["not-demo"])["id"]
    with ApiClient(server.url, server.token) as client:
        deleted = prune_demo(client, keep=2)
        assert sorted(deleted) == sorted(finished[:3]), "the three that ended first"
        assert prune_demo(client, keep=2) == []
    for job_id in (*finished[3:], running, other):
        assert api.get(f"{JOBS}/{job_id}").status_code == 200
    for job_id in finished[:3]:
        assert api.get(f"{JOBS}/{job_id}").status_code == 404
