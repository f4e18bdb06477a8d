"""The trust issue's server-side items against a real ``trainmon serve``: a local takeover by
another account, secrets in job commands, private files, the sign-in link the banner prints,
the token's length and the offline API reference."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from test_server_process import serving, wait_for

from live import TOKEN, LiveServer

JOBS = "/api/training/jobs"
NOBODY = 65534
SECRET_ENV = {
    "HF_TOKEN": "hf-secret-value-1",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value-2",
    "db_password": "pg-secret-value-3",
    "DATABASE_URL": "postgresql://trainer:url-secret-value-4@db/train",
    "SEED": "1234",
}
SECRETS = ("hf-secret-value-1", "aws-secret-value-2", "pg-secret-value-3", "url-secret-value-4")


def curl_as_nobody(*args: str) -> tuple[int, str]:
    """``curl`` run by another account on this machine: the attacker of the takeover."""

    def drop() -> None:
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    result = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        preexec_fn=drop,
        timeout=30,
        check=False,
    )
    body, _, code = result.stdout.rpartition("\n")
    return int(code or 0), body


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another account needs root")
def test_another_local_account_cannot_take_over(tmp_path: Path) -> None:
    """Before: curl as `nobody` read the CSRF token, forged Sec-Fetch-Site and Origin, and had
    the server run a command as its own user."""
    live = LiveServer(tmp_path / "d", executor=True)
    live.data_dir.mkdir(parents=True)
    live.start()
    marker = tmp_path / "pwned"
    try:
        forged = [
            "-H", "Sec-Fetch-Site: same-origin", "-H", f"Origin: {live.url}",
            "-H", "Content-Type: application/json",
        ]  # fmt: skip
        code, body = curl_as_nobody(*forged, f"{live.url}/api/auth/csrf")
        assert code == 401, body
        csrf = "0" * 64
        attack = json.dumps(
            {"name": "innocent", "command": {"argv": ["/bin/sh", "-c", f"id > {marker}"]}}
        )
        code, body = curl_as_nobody(
            *forged, "-H", f"X-CSRF-Token: {csrf}", "-d", attack, f"{live.url}{JOBS}"
        )
        assert code == 401, body
        with live.client() as client:
            victim = client.post(JOBS, json={"name": "victim"}).json()
            code, body = curl_as_nobody(
                *forged, "-X", "POST", "-H", f"X-CSRF-Token: {csrf}",
                f"{live.url}{JOBS}/{victim['id']}/cancel",
            )  # fmt: skip
            assert code == 401, body
            assert client.get(f"{JOBS}/{victim['id']}").json()["cancelRequested"] is False
            assert [j["name"] for j in client.get(JOBS).json()["jobs"]] == ["victim"]
        # Reading on loopback stays open: the attacker sees jobs, and no secret.
        code, body = curl_as_nobody(f"{live.url}{JOBS}")
        assert code == 200 and "victim" in body
        assert not marker.exists()
    finally:
        live.close()


def test_secrets_in_a_command_never_reach_a_reader(live_server: LiveServer) -> None:
    """The API, the list, the event stream and the page show names, never secret values."""
    body = {
        "name": "with-secrets",
        "command": {"argv": ["/bin/sleep", "60"], "env": SECRET_ENV},
    }
    with live_server.client() as client:
        job = client.post(JOBS, json=body).json()
        env = job["command"]["env"]
        assert set(env) == set(SECRET_ENV)
        assert env["SEED"] == "1234"
        assert env["HF_TOKEN"] == env["AWS_SECRET_ACCESS_KEY"] == env["db_password"]
        assert env["DATABASE_URL"] == "postgresql://trainer:[redacted]@db/train"
        readers = [
            client.get(f"{JOBS}/{job['id']}").text,
            client.get(JOBS).text,
            client.get("/api/training/status", params={"job_id": job["id"]}).text,
            httpx.get(f"{live_server.url}/", timeout=10).text,
        ]
        with httpx.stream("GET", f"{live_server.url}/api/training/events", timeout=10) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:") and "with-secrets" in line:
                    readers.append(line)
                    break
        client.post(f"{JOBS}/{job['id']}/cancel")
    assert len(readers) == 5
    for text in readers:
        assert "with-secrets" in text
        for secret in SECRETS:
            assert secret not in text


def test_the_supervisor_still_gets_the_real_values(live_server: LiveServer) -> None:
    script = "import os; print('seen:', os.environ['HF_TOKEN'])"
    body = {
        "name": "env-check",
        "command": {"argv": [sys.executable, "-c", script], "env": {"HF_TOKEN": "real-value"}},
    }
    with live_server.client() as client:
        job = client.post(JOBS, json=body).json()

        def finished() -> bool:
            status: str = client.get(f"{JOBS}/{job['id']}").json()["status"]
            return status in ("completed", "failed")

        wait_for(finished, "the job did not finish", live_server.output)
        assert client.get(f"{JOBS}/{job['id']}").json()["status"] == "completed"
        log = client.get(f"{JOBS}/{job['id']}/logs").text
    assert "seen: real-value" in log


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_dir_is_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "trainmon"
    with serving(data_dir) as serve:
        token = (data_dir / "token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        job = httpx.post(f"{serve.url}{JOBS}", json={"name": "a"}, headers=headers).json()
        progress = {"seq": 1, "points": [{"step": 1, "loss": 0.5}]}
        httpx.post(f"{serve.url}{JOBS}/{job['id']}/progress", json=progress, headers=headers)
        assert mode(data_dir) == 0o700
        files = [p for p in data_dir.rglob("*") if p.is_file()]
        names = {p.name for p in files}
        assert {"token", "trainmon.db", "trainmon.db-wal", "server.json"} <= names, names
        loose = {str(p): oct(mode(p)) for p in files if mode(p) & 0o077}
        assert not loose, loose


def test_an_old_world_readable_data_dir_is_tightened(tmp_path: Path) -> None:
    data_dir = tmp_path / "old"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    with serving(data_dir):
        assert mode(data_dir) == 0o700


def test_the_banner_names_the_token_source_and_signs_in_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "banner"
    with serving(data_dir) as serve:
        wait_for(lambda: "sign in" in serve.output(), "no sign-in link printed", serve.output)
        output = serve.output()
        assert f"write token: {data_dir / 'token'}" in output
        found = re.search(r"(http://127\.0\.0\.1:\d+/login/link/\S+)", output)
        assert found, output
        token = (data_dir / "token").read_text().strip()
        assert token not in output
        with httpx.Client(timeout=10, follow_redirects=True) as browser:
            first = browser.get(found.group(1))
            assert first.status_code == 200 and first.url.path == "/"
            assert browser.get(f"{serve.url}/api/auth/csrf").status_code == 200
        assert httpx.get(found.group(1), timeout=10).status_code == 410
    with serving(tmp_path / "env-banner", TRAINMON_TOKEN=TOKEN) as serve:
        wait_for(lambda: "write token" in serve.output(), "no token source", serve.output)
        assert "write token: $TRAINMON_TOKEN" in serve.output()


@pytest.mark.parametrize(
    ("token", "args", "said"),
    [
        ("short", (), "at least 16"),
        ("fifteen-chars-x", (), "at least 16"),
        (TOKEN, ("--db", "nonsense"), "not a database URL"),
        (TOKEN, ("--db", "mysql://db/x"), "unsupported database 'mysql'"),
    ],
    ids=["short-token", "15-char-token", "not-a-url", "other-database"],
)
def test_unusable_settings_are_refused_with_one_line(
    tmp_path: Path, token: str, args: tuple[str, ...], said: str
) -> None:
    env = {**os.environ, "TRAINMON_DATA_DIR": str(tmp_path), "TRAINMON_TOKEN": token}
    result = subprocess.run(
        [sys.executable, "-m", "trainmon.cli", "serve", "--port", "0", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_the_api_reference_is_served_offline_under_the_csp(live_server: LiveServer) -> None:
    page = httpx.get(f"{live_server.url}/docs", timeout=10)
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/") or s.startswith("data:") for s in sources), sources
    assert "<script>" not in page.text  # no inline script
    for source in sources:
        if source.startswith("/"):
            asset = httpx.get(f"{live_server.url}{source}", timeout=10)
            assert asset.status_code == 200, source
    assert httpx.get(f"{live_server.url}/redoc", timeout=10).status_code == 404
