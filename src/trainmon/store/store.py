"""SQL for jobs, points and batches. Knows SQL, nothing of HTTP or of the state machine."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from trainmon.models import Command, Job, JobStatus
from trainmon.reporting import Point
from trainmon.store.engine import is_sqlite, make_engine
from trainmon.store.migrations import upgrade
from trainmon.store.tables import batches, jobs, point_chunks


@dataclass(frozen=True, slots=True)
class StoredPoint:
    seq: int  # job-wide number, from 1: a cursor for reading history in pages
    step: int | None
    time: float
    values: dict[str, float]


def float_to_text(value: float | None) -> str | None:
    return None if value is None else repr(value)


def text_to_float(value: str | None) -> float | None:
    return None if value is None else float(value)


# allow_nan: JSON's NaN/Infinity literals survive a round trip through json.loads.
_dumps = json.JSONEncoder(allow_nan=True, separators=(",", ":")).encode


def encode_chunk(rows: Sequence[Point]) -> str:
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row.values))
    return _dumps(
        {
            "step": [r.step for r in rows],
            "time": [r.time for r in rows],
            "scalars": {k: [r.values.get(k) for r in rows] for k in keys},
        }
    )


def decode_chunk(first_seq: int, data: str) -> list[StoredPoint]:
    chunk = json.loads(data)
    columns = chunk["scalars"].items()
    return [
        StoredPoint(
            seq=first_seq + i,
            step=step,
            time=when,
            values={k: column[i] for k, column in columns if column[i] is not None},
        )
        for i, (step, when) in enumerate(zip(chunk["step"], chunk["time"], strict=True))
    ]


def _json_loads(text: str | None, default: Any) -> Any:
    return default if text is None else json.loads(text)


def row_to_job(row: RowMapping) -> Job:
    command = _json_loads(row["command"], None)
    return Job(
        id=row["id"],
        name=row["name"],
        status=JobStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        last_seen_at=row["last_seen_at"],
        current_step=row["current_step"],
        total_steps=row["total_steps"],
        current_loss=text_to_float(row["current_loss"]),
        metrics=_json_loads(row["metrics"], {}),
        cancel_requested=bool(row["cancel_requested"]),
        exit_code=row["exit_code"],
        error=row["error"],
        end_reason=row["end_reason"],
        executor=row["executor"],
        config=_json_loads(row["config"], {}),
        tags=tuple(_json_loads(row["tags"], [])),
        command=None
        if command is None
        else Command(argv=tuple(command["argv"]), cwd=command.get("cwd"), env=command["env"]),
        grace_seconds=row["grace_seconds"],
        supervisor_pid=row["supervisor_pid"],
        supervisor_start=row["supervisor_start"],
        sdk_attached=bool(row["sdk_attached"]),
        point_count=row["point_count"],
    )


def job_to_row(job: Job) -> dict[str, Any]:
    command = None
    if job.command is not None:
        command = json.dumps(
            {"argv": list(job.command.argv), "cwd": job.command.cwd, "env": job.command.env}
        )
    return {
        "id": job.id,
        "name": job.name,
        "status": job.status.value,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "last_seen_at": job.last_seen_at,
        "current_step": job.current_step,
        "total_steps": job.total_steps,
        "current_loss": float_to_text(job.current_loss),
        "metrics": json.dumps(job.metrics),
        "cancel_requested": job.cancel_requested,
        "exit_code": job.exit_code,
        "error": job.error,
        "end_reason": job.end_reason,
        "executor": job.executor,
        "config": json.dumps(job.config),
        "tags": json.dumps(list(job.tags)),
        "command": command,
        "grace_seconds": job.grace_seconds,
        "supervisor_pid": job.supervisor_pid,
        "supervisor_start": job.supervisor_start,
        "sdk_attached": job.sdk_attached,
        "point_count": job.point_count,
    }


class Store:
    """Owns the engines. ``write()`` gives one transaction; reads use their own engine so that,
    on SQLite, they never wait for the write lock."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        self._reader: Engine = (
            make_engine(url, writer=False) if is_sqlite(self.engine) else (self.engine)
        )
        self.dialect = self.engine.dialect.name

    def migrate(self) -> int:
        return upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
        self._reader.dispose()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._reader.connect() as conn:
            yield conn

    # -- jobs ---------------------------------------------------------------------------

    def insert_job(self, conn: Connection, job: Job) -> None:
        conn.execute(jobs.insert().values(**job_to_row(job)))

    def get_job(self, conn: Connection, job_id: str, *, lock: bool = False) -> Job | None:
        query = select(jobs).where(jobs.c.id == job_id)
        if lock and self.dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        return None if row is None else row_to_job(row)

    def save_job(self, conn: Connection, job: Job) -> None:
        row = job_to_row(job)
        del row["id"]
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(**row))

    def list_jobs(
        self,
        conn: Connection,
        statuses: frozenset[JobStatus] | None,
        limit: int,
        after: tuple[float, str] | None,
    ) -> tuple[list[Job], int]:
        """Newest first, keyset-paginated after ``(created_at, id)``; also the filtered total."""
        condition = jobs.c.status.in_([s.value for s in statuses]) if statuses is not None else None
        total_query = select(func.count()).select_from(jobs)
        query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
        if condition is not None:
            total_query = total_query.where(condition)
            query = query.where(condition)
        if after is not None:
            created, job_id = after
            query = query.where(
                or_(
                    jobs.c.created_at < created,
                    and_(jobs.c.created_at == created, jobs.c.id < job_id),
                )
            )
        found = [row_to_job(r) for r in conn.execute(query).mappings()]
        return found, int(conn.execute(total_query).scalar_one())

    def jobs_in(
        self,
        conn: Connection,
        status: JobStatus,
        *,
        executor: str | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs in one status, oldest first (the order the executor starts them in)."""
        query = select(jobs).where(jobs.c.status == status.value)
        if executor is not None:
            query = query.where(jobs.c.executor == executor)
        query = query.order_by(jobs.c.created_at, jobs.c.id).limit(limit)
        return [row_to_job(r) for r in conn.execute(query).mappings()]

    def count_in(self, conn: Connection, status: JobStatus, *, executor: str) -> int:
        query = select(func.count()).select_from(jobs)
        query = query.where(jobs.c.status == status.value, jobs.c.executor == executor)
        return int(conn.execute(query).scalar_one())

    def finished_since(self, conn: Connection, since: float) -> list[Job]:
        query = select(jobs).where(jobs.c.finished_at >= since).order_by(jobs.c.finished_at.desc())
        return [row_to_job(r) for r in conn.execute(query).mappings()]

    # -- batches and points -------------------------------------------------------------

    def claim_batch(self, conn: Connection, job_id: str, reporter: str, seq: int) -> bool:
        """Record ``(job, reporter, seq)``; False when it was already applied."""
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = dialect_insert(batches).values(job_id=job_id, reporter=reporter, seq=seq)
        # RETURNING, not rowcount: psycopg reports -1 rows for ON CONFLICT DO NOTHING.
        inserted = conn.execute(stmt.on_conflict_do_nothing().returning(batches.c.seq))
        return inserted.first() is not None

    def insert_points(
        self, conn: Connection, job_id: str, first_seq: int, rows: Sequence[Point]
    ) -> None:
        """Store a batch as one columnar chunk; its points are numbered from ``first_seq``."""
        if not rows:
            return
        conn.execute(
            point_chunks.insert().values(
                job_id=job_id, first_seq=first_seq, count=len(rows), data=encode_chunk(rows)
            )
        )

    def read_points(
        self, conn: Connection, job_id: str, after: int | None, limit: int
    ) -> list[StoredPoint]:
        """Points numbered above ``after`` (all when ``None``), oldest first, at most ``limit``."""
        after = after or 0
        query = (
            select(point_chunks.c.first_seq, point_chunks.c.data)
            .where(
                point_chunks.c.job_id == job_id,
                point_chunks.c.first_seq + point_chunks.c.count > after,
            )
            .order_by(point_chunks.c.first_seq)
        )
        found: list[StoredPoint] = []
        for first_seq, data in conn.execute(query):
            for point in decode_chunk(first_seq, data):
                if point.seq > after:
                    found.append(point)
                    if len(found) == limit:
                        return found
        return found
