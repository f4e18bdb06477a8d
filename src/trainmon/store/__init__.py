"""The job store: SQLAlchemy Core over SQLite (default) or PostgreSQL."""

from trainmon.store.store import Store, StoredPoint

__all__ = ["Store", "StoredPoint"]
