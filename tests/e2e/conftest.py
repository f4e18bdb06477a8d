"""Browser tests: Debian's chromium driven by Playwright against a real ``trainmon serve``.

Every test gets its own server (a subprocess on a free port, its own data dir and SQLite file),
so no test sees another's jobs. Jobs are created and advanced through the HTTP API with the
token, as a training script or the runner would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import Api, Server, start_server, stop_server

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_type_launch_args,
        "executable_path": os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
        "args": [
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    # UTC so the page's local times read like the server's first paint.
    return {**browser_context_args, "timezone_id": "UTC", "locale": "en-US"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path)
    yield s
    stop_server(s)


@pytest.fixture
def idle_server(tmp_path: Path) -> Iterator[Server]:
    """A server that runs no jobs itself: queued jobs stay queued, nothing changes unasked."""
    s = start_server(tmp_path, "--no-executor")
    yield s
    stop_server(s)


@pytest.fixture
def api(server: Server) -> Api:
    return server.api


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
