"""Free-text search over jobs without scanning the table: a case-insensitive substring of
``jobs.search_text`` (name, id, tags and error, folded to lower case).

- SQLite: an FTS5 table with the trigram tokenizer, kept in step with ``jobs`` by triggers. Its
  rows are numbered by ``jobs.search_key`` (a stored number, not the rowid, which VACUUM may
  change). A query of three characters or more is a phrase of trigrams; a shorter one cannot use
  trigrams and scans ``search_text`` instead.
- PostgreSQL: a GIN trigram index (``pg_trgm``) on ``search_text`` serves ``LIKE '%text%'``.
  Where the extension cannot be created (no privilege), the same query runs without it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, literal_column, select, text

from trainmon.store.tables import jobs

log = logging.getLogger(__name__)

SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS jobs_search USING fts5(body, tokenize='trigram')",
    # A new row's key is one past the largest: unique, and never reused while its row lives.
    """CREATE TRIGGER IF NOT EXISTS jobs_search_insert AFTER INSERT ON jobs BEGIN
        UPDATE jobs SET search_key = (SELECT coalesce(max(search_key), 0) + 1 FROM jobs)
            WHERE id = new.id;
        INSERT INTO jobs_search(rowid, body)
            SELECT search_key, search_text FROM jobs WHERE id = new.id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS jobs_search_update AFTER UPDATE OF search_text ON jobs
        WHEN old.search_text IS NOT new.search_text BEGIN
        UPDATE jobs_search SET body = new.search_text WHERE rowid = new.search_key;
    END""",
    """CREATE TRIGGER IF NOT EXISTS jobs_search_delete AFTER DELETE ON jobs BEGIN
        DELETE FROM jobs_search WHERE rowid = old.search_key;
    END""",
)
TRIGRAM = 3


def install_search(conn: Connection) -> None:
    """Create the search index for this database and fill it from the rows there are."""
    if conn.dialect.name == "sqlite":
        _install_sqlite(conn)
    elif conn.dialect.name == "postgresql":
        _install_postgresql(conn)


def _install_sqlite(conn: Connection) -> None:
    fresh = conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'jobs_search'")).first()
    for statement in SQLITE_SEARCH:
        conn.execute(text(statement))
    if fresh is None:  # rows made before the index: number them and index them
        conn.execute(text("UPDATE jobs SET search_key = rowid WHERE search_key IS NULL"))
        conn.execute(
            text("INSERT INTO jobs_search(rowid, body) SELECT search_key, search_text FROM jobs")
        )


def _install_postgresql(conn: Connection) -> None:
    try:
        with conn.begin_nested():
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except Exception as exc:  # no privilege: search still works, by scanning
        log.warning("search without an index: could not create extension pg_trgm (%s)", exc)
        return
    schema = conn.execute(
        text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'pg_trgm'"
        )
    ).scalar_one()
    conn.execute(
        text(
            "CREATE INDEX IF NOT EXISTS ix_jobs_search_trgm ON jobs "
            f'USING gin (search_text "{schema}".gin_trgm_ops)'
        )
    )


def _like_pattern(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_condition(dialect: str, needle: str, *, many: bool) -> ColumnElement[bool]:
    """Rows whose search text holds ``needle`` (already folded to lower case).

    ``many``: over 10,000 rows match, and the caller walks a sort index testing each row, which
    meets a match every few rows: a plain test per row beats reading every match from the index
    first. Otherwise the rows are found from the index."""
    if dialect == "sqlite" and len(needle) >= TRIGRAM and not many:
        phrase = '"' + needle.replace('"', '""') + '"'
        matching: Select[Any] = (
            select(literal_column("rowid"))
            .select_from(text("jobs_search"))
            .where(text("jobs_search MATCH :phrase").bindparams(phrase=phrase))
        )
        return jobs.c.search_key.in_(matching)
    return jobs.c.search_text.like(_like_pattern(needle), escape="\\")
