"""Versioned migrations: each step runs once, in order, in its own transaction, and records
its version, so a later release upgrades an existing database without loss."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, select

from trainmon.store.tables import metadata, schema_version


def _initial(conn: Connection) -> None:
    metadata.create_all(conn, checkfirst=True)


# Append new steps; never edit a released one.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _initial),
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
