"""The job store: SQLAlchemy Core over SQLite (default) or PostgreSQL."""

from trainmon.store.store import PointRow, Store, StoredPoint

__all__ = ["PointRow", "Store", "StoredPoint"]
