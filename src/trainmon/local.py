"""Where this machine keeps trainmon's files, and how a client finds the local server.

Standard library only: the SDK imports this, and a training process must not pay for
platformdirs. ``tests/unit/test_local.py`` checks that the data directory matches
platformdirs' ``user_data_dir("trainmon")``, which the server side documents.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

DEFAULT_PORT = 8420
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
TOKEN_FILE = "token"
SERVER_FILE = "server.json"


def data_dir() -> Path:
    """``$TRAINMON_DATA_DIR``, else the platform's user data directory for trainmon."""
    explicit = os.environ.get("TRAINMON_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "trainmon"
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "trainmon" / "trainmon"
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    return Path(xdg if xdg else Path.home() / ".local" / "share") / "trainmon"


def read_token(directory: Path | None = None) -> str | None:
    """The write token a client should send: ``$TRAINMON_TOKEN``, else the server's token file."""
    env = os.environ.get("TRAINMON_TOKEN")
    if env:
        return env.strip()
    try:
        return (directory or data_dir()).joinpath(TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def server_url(directory: Path | None = None) -> str:
    """``$TRAINMON_URL``, else the URL the local ``trainmon serve`` recorded, else the default."""
    env = os.environ.get("TRAINMON_URL")
    if env:
        return env.rstrip("/")
    try:
        recorded = json.loads((directory or data_dir()).joinpath(SERVER_FILE).read_text())
        url = recorded.get("url")
        if isinstance(url, str) and url:
            return url.rstrip("/")
    except (OSError, ValueError, AttributeError):
        pass
    return DEFAULT_URL
