"""Shared fixtures: a database per test (SQLite file, or a fresh PostgreSQL schema), the app in
process, and a real server subprocess."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from live import TOKEN, LiveServer, make_settings
from sdk_helpers import Child
from trainmon.server.app import create_app
from trainmon.store import Store

PG_ADMIN_URL = os.environ.get(
    "TRAINMON_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's real data directory or server."""
    monkeypatch.setenv("TRAINMON_DATA_DIR", str(tmp_path / "data"))
    for name in ("TRAINMON_TOKEN", "TRAINMON_URL", "TRAINMON_JOB_ID", "TRAINMON_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a schema of this test's own."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    store = Store(db_url)
    store.migrate()
    yield store
    store.dispose()


@pytest.fixture
def client(tmp_path: Path, db_url: str) -> Iterator[TestClient]:
    """The app in process on a fresh database, authorised to write."""
    app = create_app(make_settings(tmp_path, db_url))
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        test_client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield test_client


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A real ``trainmon serve`` subprocess (executor on) on a free port and its own SQLite."""
    server = LiveServer(tmp_path / "server-data", token=TOKEN)
    server.data_dir.mkdir(parents=True, exist_ok=True)
    server.start()
    yield server
    server.close()


@pytest.fixture
def spawn() -> Iterator[Callable[..., Child]]:
    """Start training scripts; each is killed and its pipes closed at teardown."""
    children: list[Child] = []

    def start(script: str, env: dict[str, str], *args: str) -> Child:
        children.append(Child(script, env, *args))
        return children[-1]

    yield start
    for child in children:
        child.close()
