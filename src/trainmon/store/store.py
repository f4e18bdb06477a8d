"""SQL for jobs, points and batches. Knows SQL, nothing of HTTP or of the state machine."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from trainmon.jsonlimits import MAX_RENDER_DEPTH, json_problem
from trainmon.models import TERMINAL, Command, Job, JobStatus, Point, StoredPoint
from trainmon.store.engine import is_sqlite, make_engine
from trainmon.store.migrations import upgrade
from trainmon.store.tables import batches, jobs, point_chunks, sessions


def float_to_text(value: float | None) -> str | None:
    return None if value is None else repr(value)


def text_to_float(value: str | None) -> float | None:
    return None if value is None else float(value)


# allow_nan: JSON's NaN/Infinity literals survive a round trip through json.loads.
_dumps = json.JSONEncoder(allow_nan=True, separators=(",", ":")).encode


CHUNK_VERSION = 2
# A key present in at most this share of a chunk's points is stored as index/value pairs; an
# index costs about what a value does, so beyond half the points a plain column is smaller.
SPARSE_SHARE = 0.5


def encode_chunk(rows: Sequence[Point]) -> str:
    """A batch as one columnar JSON text, linear in the (point, key) pairs present.

    Version 1 (no ``"v"``) kept one column per key with a null for every point that lacked
    it: a batch whose points each carry their own key was N x K nulls. Version 2 keeps the
    keys most points carry as such columns (``"scalars"``) and the others as flat
    ``[index, value, index, value, ...]`` lists (``"sparse"``): one list per key, not two or
    one per pair, as the JSON encoder and decoder pay per list."""
    pairs: dict[str, list[float]] = {}
    for i, row in enumerate(rows):
        for key, value in row.values.items():
            flat = pairs.get(key)
            if flat is None:
                pairs[key] = [i, value]
            else:
                flat += (i, value)
    count = len(rows)
    dense: dict[str, list[float | None]] = {}
    for key, flat in pairs.items():
        if len(flat) > 2 * count * SPARSE_SHARE:
            column: list[float | None] = [None] * count
            for j in range(0, len(flat), 2):
                column[int(flat[j])] = flat[j + 1]
            dense[key] = column
    for key in dense:
        del pairs[key]
    chunk: dict[str, Any] = {
        "v": CHUNK_VERSION,
        "step": [r.step for r in rows],
        "time": [r.time for r in rows],
        "scalars": dense,
    }
    if pairs:
        chunk["sparse"] = pairs
    return _dumps(chunk)


def decode_chunk(first_seq: int, data: str) -> list[StoredPoint]:
    """Either version of ``encode_chunk``'s text; linear in its size."""
    chunk = json.loads(data)
    steps, times = chunk["step"], chunk["time"]
    found: list[dict[str, float]] = [{} for _ in steps]
    for key, column in chunk["scalars"].items():
        for i, value in enumerate(column):
            if value is not None:
                found[i][key] = value
    for key, flat in chunk.get("sparse", {}).items():
        pair = iter(flat)
        for i, value in zip(pair, pair, strict=True):
            found[i][key] = value
    return [
        StoredPoint(seq=first_seq + i, step=step, time=when, values=point)
        for i, (step, when, point) in enumerate(zip(steps, times, found, strict=True))
    ]


def _json_loads(text: str | None, default: Any) -> Any:
    return default if text is None else json.loads(text)


class UnreadableJson(dict[str, Any]):
    """An empty config standing in for JSON columns of a row that cannot be decoded (written
    around the API): the job still lists, with the reason, and saving the job writes the
    stored text of those columns back unchanged."""

    def __init__(self, raw: dict[str, str | None], reason: str) -> None:
        super().__init__()
        self.raw = raw
        self.reason = reason


_JSON_COLUMNS = ("config", "tags", "metrics", "command")


@lru_cache(maxsize=256)
def _stored_config_problem(text: str) -> str | None:
    """Checked once per distinct text: a job's config never changes and its row is read on
    every report. (256 entries: at most 16 MiB of 64 KiB configs held.)"""
    problem = json_problem(json.loads(text), max_depth=MAX_RENDER_DEPTH)
    return None if problem is None else f"stored config {problem}"


def _decoded_json_columns(row: RowMapping) -> tuple[dict[str, Any], UnreadableJson | None]:
    decoded: dict[str, Any] = {}
    failed: dict[str, str | None] = {}
    reasons: list[str] = []
    for name in _JSON_COLUMNS:
        try:
            value = _json_loads(row[name], None)
            if name == "command" and value is not None:
                value = Command(argv=tuple(value["argv"]), cwd=value.get("cwd"), env=value["env"])
            decoded[name] = value
            problem = _stored_config_problem(row[name]) if name == "config" and value else None
            if problem is not None:
                failed[name] = row[name]
                reasons.append(problem)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            failed[name] = row[name]
            kind = "nested too deeply" if isinstance(exc, RecursionError) else "not valid JSON"
            reasons.append(f"stored {name} is {kind}")
    if not failed:
        return decoded, None
    # The config column is replaced by the marker, so its text is kept too, readable or not.
    failed.setdefault("config", row["config"])
    return decoded, UnreadableJson(failed, "; ".join(reasons))


def row_to_job(row: RowMapping) -> Job:
    decoded, unreadable = _decoded_json_columns(row)
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
        metrics=decoded.get("metrics") or {},
        cancel_requested=bool(row["cancel_requested"]),
        exit_code=row["exit_code"],
        error=row["error"],
        end_reason=row["end_reason"],
        executor=row["executor"],
        config=unreadable if unreadable is not None else decoded["config"] or {},
        tags=tuple(decoded.get("tags") or ()),
        command=decoded.get("command"),
        grace_seconds=row["grace_seconds"],
        supervisor_pid=row["supervisor_pid"],
        supervisor_start=row["supervisor_start"],
        sdk_attached=bool(row["sdk_attached"]),
        point_count=row["point_count"],
        training_pgid=row["training_pgid"],
        cancel_source=row["cancel_source"],
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
        "training_pgid": job.training_pgid,
        "cancel_source": job.cancel_source,
    } | (job.config.raw if isinstance(job.config, UnreadableJson) else {})


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

    def oldest_queued(self, conn: Connection, executor: str) -> Job | None:
        """The next queued job of ``executor``, locked for this transaction. On PostgreSQL a
        row another transaction is claiming is skipped, not waited for; SQLite's write
        transaction already excludes every other claimer."""
        query = (
            select(jobs)
            .where(jobs.c.status == JobStatus.QUEUED.value, jobs.c.executor == executor)
            .order_by(jobs.c.created_at, jobs.c.id)
            .limit(1)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        row = conn.execute(query).mappings().first()
        return None if row is None else row_to_job(row)

    def count_in(self, conn: Connection, status: JobStatus, *, executor: str) -> int:
        query = select(func.count()).select_from(jobs)
        query = query.where(jobs.c.status == status.value, jobs.c.executor == executor)
        return int(conn.execute(query).scalar_one())

    def finished_since(self, conn: Connection, since: float) -> list[Job]:
        query = select(jobs).where(jobs.c.finished_at >= since).order_by(jobs.c.finished_at.desc())
        return [row_to_job(r) for r in conn.execute(query).mappings()]

    # -- deleting and retention ---------------------------------------------------------

    def delete_jobs(self, conn: Connection, job_ids: Sequence[str]) -> None:
        """Remove jobs with their points and batches. Explicit deletes, not the foreign keys'
        cascade: SQLite enforces those only with a per-connection pragma."""
        if not job_ids:
            return
        ids = list(job_ids)
        conn.execute(point_chunks.delete().where(point_chunks.c.job_id.in_(ids)))
        conn.execute(batches.delete().where(batches.c.job_id.in_(ids)))
        conn.execute(jobs.delete().where(jobs.c.id.in_(ids)))

    def finished_before(self, conn: Connection, before: float, limit: int) -> list[str]:
        """Ids of up to ``limit`` finished jobs that ended before ``before``, oldest first."""
        # Every terminal job has finished_at (transition stamps it): the index serves this.
        query = (
            select(jobs.c.id)
            .where(jobs.c.finished_at < before, jobs.c.status.in_([s.value for s in TERMINAL]))
            .order_by(jobs.c.finished_at, jobs.c.id)
            .limit(limit)
        )
        return [str(job_id) for job_id in conn.execute(query).scalars()]

    def pending_quiet_before(self, conn: Connection, before: float, limit: int) -> list[str]:
        """Ids of pending jobs not heard from (nor created) since ``before``, oldest first."""
        quiet = func.coalesce(jobs.c.last_seen_at, jobs.c.created_at)
        query = (
            select(jobs.c.id)
            .where(jobs.c.status == JobStatus.PENDING.value, quiet < before)
            .order_by(quiet, jobs.c.id)
            .limit(limit)
        )
        return [str(job_id) for job_id in conn.execute(query).scalars()]

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
        if rows:
            self.insert_chunk(conn, job_id, first_seq, len(rows), encode_chunk(rows))

    def insert_chunk(
        self, conn: Connection, job_id: str, first_seq: int, count: int, data: str
    ) -> None:
        """Store a chunk ``encode_chunk`` made; encoding it before the write transaction keeps
        that work out of the lock every other job's reports wait for."""
        conn.execute(
            point_chunks.insert().values(job_id=job_id, first_seq=first_seq, count=count, data=data)
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

    # -- sign-in sessions ---------------------------------------------------------------

    def insert_session(
        self, conn: Connection, session_id: str, created_at: float, expires_at: float, fp: str
    ) -> None:
        conn.execute(
            sessions.insert().values(
                id=session_id, created_at=created_at, expires_at=expires_at, token_fp=fp
            )
        )

    def find_session(self, conn: Connection, session_id: str) -> tuple[float, str] | None:
        """``(expires_at, token_fp)`` of a session, or ``None``."""
        query = select(sessions.c.expires_at, sessions.c.token_fp).where(
            sessions.c.id == session_id
        )
        row = conn.execute(query).first()
        return None if row is None else (float(row[0]), str(row[1]))

    def delete_session(self, conn: Connection, session_id: str) -> None:
        conn.execute(sessions.delete().where(sessions.c.id == session_id))

    def delete_sessions_expired(self, conn: Connection, now: float) -> int:
        return int(conn.execute(sessions.delete().where(sessions.c.expires_at <= now)).rowcount)
