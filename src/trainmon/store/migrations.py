"""Versioned migrations: each step runs once, in order, in its own transaction, and records
its version, so a later release upgrades an existing database without loss."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select, text

from trainmon.job_query import stored_sort_values
from trainmon.store.rows import row_to_job
from trainmon.store.search import install_search
from trainmon.store.tables import (
    ix_jobs_finished,
    ix_jobs_search_key,
    ix_jobs_status_seen,
    job_tags,
    jobs,
    list_indexes,
    metadata,
    schema_version,
    sessions,
)

BACKFILL_BATCH = 1_000


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


def _job_list_columns(conn: Connection) -> None:
    """Sort, filter and search columns for the job list (issue 11), filled in for old rows."""

    present = {c["name"] for c in inspect(conn).get_columns("jobs")}
    added = False
    derived = ("duration", "sort_name", "progress", "loss_value", "search_text", "search_key")
    for name in (*derived, "step_at"):
        if name not in present:
            sql_type = {"search_text": "TEXT", "sort_name": "TEXT", "search_key": "INTEGER"}
            column_type = sql_type.get(name, "DOUBLE PRECISION" if _is_pg(conn) else "REAL")
            conn.execute(text(f"ALTER TABLE jobs ADD COLUMN {name} {column_type}"))
            added = True
    job_tags.create(conn, checkfirst=True)
    if added:  # an older database: derive the new columns and the tag rows from each row
        after = ""
        while True:
            rows = (
                conn.execute(
                    select(jobs).where(jobs.c.id > after).order_by(jobs.c.id).limit(BACKFILL_BATCH)
                )
                .mappings()
                .all()
            )
            if not rows:
                break
            for row in rows:
                job = row_to_job(row)
                conn.execute(
                    jobs.update().where(jobs.c.id == job.id).values(**stored_sort_values(job))
                )
                if job.tags:
                    conn.execute(
                        job_tags.insert(), [{"job_id": job.id, "tag": t} for t in set(job.tags)]
                    )
            after = rows[-1]["id"]
    for index in (*list_indexes, ix_jobs_status_seen, ix_jobs_search_key):
        index.create(conn, checkfirst=True)
    conn.execute(text("DROP INDEX IF EXISTS ix_jobs_status_created"))
    install_search(conn)


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


# Append new steps; never edit a released one.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _initial),
    (2, _sign_in_sessions),
    (3, _job_process_columns),
    (4, _finished_index),
    (5, _job_list_columns),
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
