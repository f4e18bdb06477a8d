"""The schema. Floats that may be NaN or infinite (loss, metrics) are kept as text: SQLite turns
NaN into NULL, and a diverged loss is data we must return as it came."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# SQLite only auto-increments a column typed exactly INTEGER.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")

schema_version = Table(
    "trainmon_schema",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", Float, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("last_seen_at", Float),
    Column("current_step", BigInteger),
    Column("total_steps", BigInteger),
    Column("current_loss", Text),
    Column("metrics", Text, nullable=False, default="{}"),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("exit_code", Integer),
    Column("error", Text),
    Column("end_reason", Text),
    Column("executor", String(16), nullable=False),
    Column("config", Text, nullable=False, default="{}"),
    Column("tags", Text, nullable=False, default="[]"),
    Column("command", Text),
    Column("grace_seconds", Float, nullable=False, default=10.0),
    Column("supervisor_pid", Integer),
    Column("supervisor_start", BigInteger),
    Column("sdk_attached", Boolean, nullable=False, default=False),
    Column("point_count", BigInteger, nullable=False, default=0),
    # Migration 3: the training's process group (killed when its supervisor is lost) and who
    # asked for the cancel ("api" or "dashboard").
    Column("training_pgid", Integer),
    Column("cancel_source", String(16)),
    # Migration 5: what the job list sorts and searches by, derived from the row on every save
    # (job_query.stored_sort_values). search_key numbers the row in SQLite's full-text index.
    Column("duration", Float),
    Column("sort_name", Text),
    Column("progress", Float),
    Column("loss_value", Float),
    Column("search_text", Text),
    Column("search_key", Integer),
    Column("step_at", Float),
)
Index("ix_jobs_created", jobs.c.created_at, jobs.c.id)
# Every sort of the job list walks one of these per status (store.list_jobs), so a filter by
# status and a page deep in the list are index range scans, never a sort of the table.
LIST_SORT_COLUMNS = (
    "created_at", "started_at", "finished_at", "duration", "sort_name", "progress", "loss_value",
)  # fmt: skip
list_indexes = [
    Index(f"ix_jobs_status_{name}", jobs.c.status, jobs.c[name], jobs.c.id)
    for name in LIST_SORT_COLUMNS
] + [Index("ix_jobs_status_id", jobs.c.status, jobs.c.id)]
# The liveness watcher asks only for running jobs silent past a deadline.
ix_jobs_status_seen = Index("ix_jobs_status_seen", jobs.c.status, jobs.c.last_seen_at)
ix_jobs_search_key = Index("ix_jobs_search_key", jobs.c.search_key, unique=True)
# Retention prunes, and the dashboard lists, by finish time.
ix_jobs_finished = Index("ix_jobs_finished", jobs.c.finished_at)

# A reporter's batch of points is one row, stored as columns: ingest writes one row per
# batch instead of one per point, and a chart reads a few rows for thousands of points.
point_chunks = Table(
    "point_chunks",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("first_seq", BigInteger, nullable=False),  # job-wide number of its first point, from 1
    Column("count", Integer, nullable=False),
    # {"step": [...], "time": [...], "scalars": {"loss": [...], ...}} as JSON text; null where a
    # point lacks a value; NaN and infinities as JSON's NaN/Infinity literals.
    Column("data", Text, nullable=False),
)
Index("ix_point_chunks_job", point_chunks.c.job_id, point_chunks.c.first_seq)

# One row per applied progress batch: a resent batch finds its row and is skipped.
batches = Table(
    "batches",
    metadata,
    Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("reporter", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
)

# A job's tags, one row each, for the tag filter (tags never change after a job is created).
job_tags = Table(
    "job_tags",
    metadata,
    Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", Text, primary_key=True),
)
Index("ix_job_tags_tag", job_tags.c.tag, job_tags.c.job_id)

# Dashboard sign-in sessions. ``id`` is the SHA-256 of the cookie's secret, so a copy of the
# database cannot be replayed as a cookie; ``token_fp`` ties a session to the write token it
# was issued under: a new token ends every session.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("token_fp", String(64), nullable=False),
)
Index("ix_sessions_expires", sessions.c.expires_at)
