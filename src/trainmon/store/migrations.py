"""Versioned migrations: each step runs once, in order, in its own transaction, and records
its version, so a later release upgrades an existing database without loss."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select, text

from trainmon.store.tables import ix_jobs_finished, metadata, schema_version, sessions


def _initial(conn: Connection) -> None:
    metadata.create_all(conn, checkfirst=True)


def _sign_in_sessions(conn: Connection) -> None:
    # A new database has the table from step 1 already (create_all makes every table).
    sessions.create(conn, checkfirst=True)


def _job_process_columns(conn: Connection) -> None:
    # A new database has these from step 1 (create_all builds the current table); an older one
    # gets them added. Both columns are nullable, so existing rows need no value.
    present = {c["name"] for c in inspect(conn).get_columns("jobs")}
    for name, sql_type in (("training_pgid", "INTEGER"), ("cancel_source", "VARCHAR(16)")):
        if name not in present:
            conn.execute(text(f"ALTER TABLE jobs ADD COLUMN {name} {sql_type}"))


def _finished_index(conn: Connection) -> None:
    ix_jobs_finished.create(conn, checkfirst=True)


# Append new steps; never edit a released one.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _initial),
    (2, _sign_in_sessions),
    (3, _job_process_columns),
    (4, _finished_index),
]


def current_version(conn: Connection) -> int:
    schema_version.create(conn, checkfirst=True)
    found = conn.execute(select(schema_version.c.version).order_by(schema_version.c.version.desc()))
    row = found.first()
    return int(row[0]) if row else 0


def upgrade(engine: Engine) -> int:
    """Bring the schema to the newest version; return it."""
    with engine.begin() as conn:
        version = current_version(conn)
    for target, step in MIGRATIONS:
        if target <= version:
            continue
        with engine.begin() as conn:
            step(conn)
            conn.execute(schema_version.insert().values(version=target, applied_at=time.time()))
        version = target
    return version
