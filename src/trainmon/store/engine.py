"""Engine creation for SQLite (WAL, the default) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError


class DatabaseUrlError(ValueError):
    """A database URL this store cannot use; the CLI and the app say it in one line."""


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as psycopg 3 URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_private(path: Path) -> None:
    """Create the database file 0600 (its folder 0700) before SQLite does: SQLite would make it
    0644, and its -wal and -shm files copy the database file's mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def parse_database_url(url: str) -> URL:
    """The URL as SQLAlchemy reads it, if it names a store we support; else
    ``DatabaseUrlError``. Opens nothing, so settings can check it before the server starts."""
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError as exc:
        raise DatabaseUrlError(f"not a database URL: {url!r}") from exc
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseUrlError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
        )
    return parsed


def make_engine(url: str, *, writer: bool = True) -> Engine:
    """``writer=False`` gives SQLite readers that never take the write lock (WAL lets them run
    beside a writer); PostgreSQL needs no such split."""
    parsed = parse_database_url(url)
    url = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, writer)
    engine = create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # PostgreSQL's default (4.0) prices a random read as a spinning disk's: the planner
        # then reads 100k job rows rather than look 1k up by index (a tag, a search). A job
        # table lives in RAM or on an SSD; 1.1 is the usual setting for those.
        with dbapi_conn.cursor() as cur:
            cur.execute("SET random_page_cost = 1.1")
        dbapi_conn.commit()

    return engine


def _sqlite_engine(url: str, database: str | None, writer: bool) -> Engine:
    if database and database != ":memory:":
        create_private(Path(database).expanduser())
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's begin() issue BEGIN itself, so a write transaction is one unit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: no deadlock upgrading a read to a write.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
