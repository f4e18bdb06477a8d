"""SQL for jobs, points and batches. Knows SQL, nothing of HTTP or of the state machine. How a
job maps to its row is ``store/rows.py``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Update,
    and_,
    bindparam,
    func,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from trainmon.job_query import JobQuery, SortValue
from trainmon.models import TERMINAL, Job, JobStatus, Point, StoredPoint
from trainmon.store.engine import is_sqlite, make_engine
from trainmon.store.migrations import upgrade
from trainmon.store.rows import job_to_row, row_to_job
from trainmon.store.search import search_condition
from trainmon.store.tables import batches, job_tags, jobs, point_chunks, sessions

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


# Every column a job's row is saved with, but its key and search_key (kept by a trigger).
UPDATED_COLUMNS = tuple(c.name for c in jobs.columns if c.name not in ("id", "search_key"))


def _update_params(row: dict[str, Any]) -> dict[str, Any]:
    return {f"v_{name}": value for name, value in row.items()}


# A filtered list with at most this many matches sorts them rather than walk a sort index (the
# count that decides is exact this far: service.COUNT_CAP).
FEW_ROWS = 10_000


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
        # The statements every report runs, built once: building one costs SQLAlchemy more
        # than running it (a job row has ~40 columns), and a reused statement's cache key is
        # kept. Values come as bound parameters.
        self._get = select(jobs).where(jobs.c.id == bindparam("job_id"))
        self._get_locked = (
            self._get.with_for_update() if self.dialect == "postgresql" else self._get
        )
        self._update = (
            update(jobs)
            .where(jobs.c.id == bindparam("v_id"))
            .values({name: bindparam(f"v_{name}") for name in UPDATED_COLUMNS})
        )
        self._updates: dict[tuple[str, ...], Update] = {}
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        self._claim = (
            dialect_insert(batches)
            .values(
                job_id=bindparam("job_id"), reporter=bindparam("reporter"), seq=bindparam("seq")
            )
            .on_conflict_do_nothing()
            .returning(batches.c.seq)
        )

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
        if job.tags:
            conn.execute(job_tags.insert(), [{"job_id": job.id, "tag": t} for t in set(job.tags)])

    def get_job(self, conn: Connection, job_id: str, *, lock: bool = False) -> Job | None:
        query = self._get_locked if lock else self._get
        row = conn.execute(query, {"job_id": job_id}).mappings().first()
        return None if row is None else row_to_job(row)

    def get_jobs(self, conn: Connection, job_ids: set[str]) -> dict[str, Job]:
        """These jobs by id, locked for this transaction (those that exist)."""
        if not job_ids:
            return {}
        query = select(jobs).where(jobs.c.id.in_(sorted(job_ids)))
        if self.dialect == "postgresql":
            query = query.with_for_update()  # in id order: two writers never deadlock
        return {row["id"]: row_to_job(row) for row in conn.execute(query).mappings()}

    def claimed_batches(
        self, conn: Connection, keys: Sequence[tuple[str, str, int]]
    ) -> set[tuple[str, str, int]]:
        """Which of these ``(job, reporter, seq)`` were applied already."""
        if not keys:
            return set()
        key = tuple_(batches.c.job_id, batches.c.reporter, batches.c.seq)
        query = select(batches.c.job_id, batches.c.reporter, batches.c.seq)
        rows = conn.execute(query.where(key.in_(sorted(set(keys)))))
        return {(job_id, reporter, seq) for job_id, reporter, seq in rows}

    def insert_claims(self, conn: Connection, keys: Sequence[tuple[str, str, int]]) -> None:
        if keys:
            rows = [{"job_id": j, "reporter": r, "seq": s} for j, r, s in keys]
            conn.execute(batches.insert(), rows)

    def insert_chunks(self, conn: Connection, chunks: Sequence[tuple[str, int, int, str]]) -> None:
        """Store chunks ``encode_chunk`` made: ``(job, first_seq, count, data)`` each."""
        if chunks:
            rows = [{"job_id": j, "first_seq": f, "count": n, "data": d} for j, f, n, d in chunks]
            conn.execute(point_chunks.insert(), rows)

    def save_job(self, conn: Connection, job: Job) -> None:
        self.save_jobs(conn, [job])

    def save_jobs(
        self, conn: Connection, changed: Sequence[Job], before: Mapping[str, Job] | None = None
    ) -> None:
        """Write jobs' rows, an executemany per set of columns that changed. With ``before``
        (the jobs as read), only the columns a report changed are set: SQLite updates every
        index on a column that is set, and a job row has a dozen; a report moves three."""
        if not changed:
            return
        if before is None:
            conn.execute(self._update, [_update_params(job_to_row(job)) for job in changed])
            return
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for job in changed:
            row = job_to_row(job)
            old = before.get(job.id)
            was = job_to_row(old) if old is not None else {}
            columns = tuple(c for c in UPDATED_COLUMNS if c in row and row[c] != was.get(c))
            if columns:
                params = {f"v_{c}": row[c] for c in columns} | {"v_id": job.id}
                by_columns.setdefault(columns, []).append(params)
        for columns, rows in by_columns.items():
            conn.execute(self._update_of(columns), rows)

    def _update_of(self, columns: tuple[str, ...]) -> Update:
        statement = self._updates.get(columns)
        if statement is None:
            statement = (
                update(jobs)
                .where(jobs.c.id == bindparam("v_id"))
                .values({name: bindparam(f"v_{name}") for name in columns})
            )
            if len(self._updates) < 256:  # a handful of shapes in practice; never unbounded
                self._updates[columns] = statement
        return statement

    def list_jobs(
        self,
        conn: Connection,
        query: JobQuery,
        limit: int,
        after: tuple[SortValue, str] | None,
        *,
        matching: int | None = None,
    ) -> list[Job]:
        """One page of ``query``'s jobs, after the cursor's ``(sort value, id)``. Jobs without
        a value for the sort (not finished, no loss yet) come last, whatever the direction.

        Each status is read on its own (status, sort column, id) index, non-null values then
        nulls, each a range scan of at most ``limit`` rows; the pieces are merged. So a status
        filter or a deep page never sorts the table. When a tag or a search picks few rows
        (``matching``, from ``count_jobs``, at most ``FEW_ROWS``) those are read through their
        own index and sorted instead: walking the sort index would test row after row."""
        column, descending = jobs.c[query.column], query.descending
        statuses = sorted(query.statuses if query.statuses is not None else set(JobStatus))
        few = (query.tags or query.text) and matching is not None and matching <= FEW_ROWS
        filters = self._filters(query, many=not few)
        job_id = jobs.c.id

        def past(col: ColumnElement[Any], value: object) -> ColumnElement[bool]:
            return col < value if descending else col > value

        if few:
            keyset: list[ColumnElement[bool]] = []
            if after is not None and after[0] is None:
                keyset = [column.is_(None), past(job_id, after[1])]
            elif after is not None:
                value, last = after
                ahead = or_(past(column, value), and_(column == value, past(job_id, last)))
                keyset = [or_(and_(column.is_not(None), ahead), column.is_(None))]
            if query.statuses is not None:
                filters.append(jobs.c.status.in_([s.value for s in statuses]))
            by = [column.is_(None), column.desc() if descending else column.asc()]
            by.append(job_id.desc() if descending else job_id.asc())
            found = select(job_id).where(*filters, *keyset).order_by(*by).limit(limit)
            return self._jobs_in_order(conn, list(conn.execute(found).scalars()))

        def piece(where: list[ColumnElement[bool]], *order: ColumnElement[Any]) -> Select[Any]:
            # Ordered exactly as the index is, so each piece is a range scan that stops early.
            by = [c.desc() if descending else c.asc() for c in order]
            inner = select(job_id, column).where(*where).order_by(*by).limit(limit)
            return select(inner.subquery())

        pieces = []
        for status in statuses:
            here = [jobs.c.status == status.value, *filters]
            if column is jobs.c.status:  # constant within a status: the id orders it
                if after is None or after[0] == status.value:
                    keyset = [] if after is None else [past(job_id, after[1])]
                    pieces.append(piece([*here, *keyset], job_id))
                elif (status.value < str(after[0])) == descending:  # wholly after the cursor
                    pieces.append(piece(here, job_id))
                continue
            if after is None or after[0] is not None:  # the non-null values are not done
                keyset = []
                if after is not None:
                    value, last = after
                    keyset = [or_(past(column, value), and_(column == value, past(job_id, last)))]
                pieces.append(piece([*here, column.is_not(None), *keyset], column, job_id))
            in_nulls = after is not None and after[0] is None
            keyset = [past(job_id, after[1])] if after is not None and in_nulls else []
            pieces.append(piece([*here, column.is_(None), *keyset], column, job_id))
        merged = union_all(*pieces).subquery() if len(pieces) > 1 else pieces[0].subquery()
        key = merged.c[column.key]
        order = [key.is_(None), key.desc() if descending else key.asc()]
        order.append(merged.c.id.desc() if descending else merged.c.id.asc())
        ids = conn.execute(select(merged.c.id).order_by(*order).limit(limit)).scalars()
        # The pieces carry two columns, not the whole row: building a statement of a dozen
        # subqueries costs SQLAlchemy per column. The page's rows are read in one go.
        return self._jobs_in_order(conn, list(ids))

    @staticmethod
    def _jobs_in_order(conn: Connection, ids: list[str]) -> list[Job]:
        if not ids:
            return []
        rows = conn.execute(select(jobs).where(jobs.c.id.in_(ids))).mappings()
        by_id = {row["id"]: row for row in rows}
        return [row_to_job(by_id[i]) for i in ids if i in by_id]

    def _filters(self, query: JobQuery, *, many: bool = False) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        for tag in query.tags:
            found.append(jobs.c.id.in_(select(job_tags.c.job_id).where(job_tags.c.tag == tag)))
        if query.text:
            found.append(search_condition(self.dialect, query.text, many=many))
        if query.created_since is not None:
            found.append(jobs.c.created_at >= query.created_since)
        if query.created_until is not None:
            found.append(jobs.c.created_at < query.created_until)
        if query.ids is not None:
            found.append(jobs.c.id.in_(query.ids))
        return found

    def count_jobs(self, conn: Connection, query: JobQuery, cap: int) -> int:
        """How many jobs ``query`` has, counting no further than ``cap`` + 1: a count never
        costs more than a few pages."""
        where = self._filters(query)
        if query.statuses is not None:
            where.append(jobs.c.status.in_(sorted(s.value for s in query.statuses)))
        capped = select(jobs.c.id).where(*where).limit(cap + 1).subquery()
        return int(conn.execute(select(func.count()).select_from(capped)).scalar_one())

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

    def running_seen_before(
        self, conn: Connection, before: float, since: float | None = None
    ) -> list[Job]:
        """Running jobs last heard from before ``before`` (and at or after ``since``), plus,
        without ``since``, running jobs never heard from. An index range: ~0 rows when all is
        well, however many jobs run."""
        seen = jobs.c.last_seen_at
        window = [seen < before] if since is None else [seen >= since, seen < before]
        query = select(jobs).where(jobs.c.status == JobStatus.RUNNING.value, *window)
        found = [row_to_job(r) for r in conn.execute(query).mappings()]
        if since is None:
            never = select(jobs).where(jobs.c.status == JobStatus.RUNNING.value, seen.is_(None))
            found += [row_to_job(r) for r in conn.execute(never).mappings()]
        return found

    def count_in(self, conn: Connection, status: JobStatus, *, executor: str) -> int:
        query = select(func.count()).select_from(jobs)
        query = query.where(jobs.c.status == status.value, jobs.c.executor == executor)
        return int(conn.execute(query).scalar_one())

    def delete_jobs(self, conn: Connection, job_ids: Sequence[str]) -> None:
        """Remove jobs with their points and batches. Explicit deletes, not the foreign keys'
        cascade: SQLite enforces those only with a per-connection pragma."""
        if not job_ids:
            return
        ids = list(job_ids)
        conn.execute(point_chunks.delete().where(point_chunks.c.job_id.in_(ids)))
        conn.execute(batches.delete().where(batches.c.job_id.in_(ids)))
        conn.execute(job_tags.delete().where(job_tags.c.job_id.in_(ids)))
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
        # RETURNING, not rowcount: psycopg reports -1 rows for ON CONFLICT DO NOTHING.
        inserted = conn.execute(self._claim, {"job_id": job_id, "reporter": reporter, "seq": seq})
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
