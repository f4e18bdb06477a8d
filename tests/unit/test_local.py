from __future__ import annotations

import os
import stat
from pathlib import Path

import platformdirs
import pytest

from trainmon import local
from trainmon.settings import build_settings, ensure_token, is_loopback


def test_data_dir_matches_platformdirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRAINMON_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert local.data_dir() == Path(platformdirs.user_data_dir("trainmon"))
    monkeypatch.delenv("XDG_DATA_HOME")
    assert local.data_dir() == Path(platformdirs.user_data_dir("trainmon"))


def test_token_file_is_created_private_and_reused(tmp_path: Path) -> None:
    token = ensure_token(tmp_path)
    path = tmp_path / local.TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 32 and ensure_token(tmp_path) == token
    assert local.read_token(tmp_path) == token


def test_env_token_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ensure_token(tmp_path)
    monkeypatch.setenv("TRAINMON_TOKEN", "from-env-0123456789")
    assert local.read_token(tmp_path) == "from-env-0123456789"
    env = {
        "TRAINMON_DATA_DIR": str(tmp_path),
        "TRAINMON_TOKEN": "from-env-0123456789",
        "TRAINMON_MAX_CONCURRENT": "2",
    }
    assert build_settings(env=env).token == "from-env-0123456789"


def test_server_url_prefers_env_then_recorded_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert local.server_url(tmp_path) == local.DEFAULT_URL
    (tmp_path / local.SERVER_FILE).write_text('{"url": "http://127.0.0.1:9999/"}')
    assert local.server_url(tmp_path) == "http://127.0.0.1:9999"
    (tmp_path / local.SERVER_FILE).write_text("not json")
    assert local.server_url(tmp_path) == local.DEFAULT_URL
    monkeypatch.setenv("TRAINMON_URL", "http://h:1/")
    assert local.server_url(tmp_path) == "http://h:1"


def test_flags_beat_environment(tmp_path: Path) -> None:
    env = {
        "TRAINMON_DATA_DIR": str(tmp_path),
        "TRAINMON_PORT": "9000",
        "TRAINMON_HOST": "0.0.0.0",
        "TRAINMON_MAX_CONCURRENT": "3",
    }
    settings = build_settings(port=9100, env=env)
    assert (settings.port, settings.host, settings.max_concurrent) == (9100, "0.0.0.0", 3)
    assert settings.reads_need_token and settings.url == "http://127.0.0.1:9100"
    assert settings.database_url == f"sqlite:///{tmp_path / 'trainmon.db'}"
    assert os.path.exists(tmp_path / local.TOKEN_FILE)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.0.2", True),
     ("0.0.0.0", False), ("10.0.0.5", False), ("example.com", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
