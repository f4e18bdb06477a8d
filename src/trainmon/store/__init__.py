"""The job store: SQLAlchemy Core over SQLite (default) or PostgreSQL."""

from trainmon.store.store import Store

__all__ = ["Store"]
