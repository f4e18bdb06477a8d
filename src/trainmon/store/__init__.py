"""The job store: SQLAlchemy Core over SQLite (default) or PostgreSQL."""

from trainmon.store.store import PointRow, StoredPoint, Store

__all__ = ["PointRow", "Store", "StoredPoint"]
