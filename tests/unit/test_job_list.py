"""The job list on SQLite and PostgreSQL: every sort in both directions, with filters, paged
through to the end, against the same order computed in Python; search; capped totals; and a
database made before migration 5 gets its rows sortable and searchable."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import text

from trainmon.errors import BadRequest
from trainmon.job_query import SORT_COLUMNS, JobQuery, sort_value, stored_sort_values
from trainmon.models import ACTIVE, TERMINAL, Job, JobStatus
from trainmon.service import JobService
from trainmon.store import Store
from trainmon.store.tables import jobs

S = JobStatus
NAMES = ["llama-lora-r16", "Mistral sweep", "mlp", "résumé-bert", "LLAMA base", "gpt2-small"]
TAGS = [(), ("sweep-3",), ("sweep-3", "lr-1e-4"), ("baseline",)]
ERRORS = [None, "CUDA out of memory", "Traceback ... ValueError: loss is NaN"]


def make_jobs(count: int, seed: int = 7) -> list[Job]:
    """Varied jobs: every status, ties on created_at, missing and NaN values."""
    rng = random.Random(seed)
    made = []
    for i in range(count):
        status = rng.choice(list(JobStatus))
        created = 1_000.0 + rng.randrange(max(1, count // 2))  # ties on purpose
        started = created + rng.random() * 10 if status in (S.RUNNING, *TERMINAL) else None
        finished = started + rng.random() * 100 if started and status in TERMINAL else None
        total = rng.choice([None, 0, 100, 1000])
        step = rng.choice([None, 0, 50, 100, 1500]) if started else None
        loss = rng.choice([None, 0.5, 0.25, 2.0, math.nan, math.inf]) if started else None
        made.append(
            Job(
                id=f"job-{i:05d}",
                name=rng.choice(NAMES),
                status=status,
                created_at=created,
                updated_at=created,
                started_at=started,
                finished_at=finished,
                current_step=step,
                total_steps=total,
                current_loss=loss,
                tags=rng.choice(TAGS),
                error=rng.choice(ERRORS) if status is S.FAILED else None,
            )
        )
    return made


@pytest.fixture
def filled(store: Store) -> Iterator[tuple[JobService, list[Job]]]:
    made = make_jobs(80)
    with store.write() as conn:
        for job in made:
            store.insert_job(conn, job)
    yield JobService(store), made


def expected(made: list[Job], query: JobQuery) -> list[str]:
    """The order the API promises, computed without a database."""

    def matches(job: Job) -> bool:
        text = stored_sort_values(job)["search_text"]
        return (
            (query.statuses is None or job.status in query.statuses)
            and all(t in job.tags for t in query.tags)
            and (query.text is None or query.text in text)
            and (query.created_since is None or job.created_at >= query.created_since)
        )

    chosen = [j for j in made if matches(j)]
    with_value = [j for j in chosen if sort_value(j, query.sort) is not None]
    without = [j for j in chosen if sort_value(j, query.sort) is None]
    with_value.sort(key=lambda j: (sort_value(j, query.sort), j.id), reverse=query.descending)
    without.sort(key=lambda j: j.id, reverse=query.descending)
    return [j.id for j in with_value + without]


def page_through(service: JobService, query: JobQuery, limit: int = 7) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        page = service.list_jobs(query, limit, cursor)
        assert len(page.jobs) <= limit
        seen += [job.id for job in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("sort", list(SORT_COLUMNS))
def test_every_sort_pages_through_in_order(
    filled: tuple[JobService, list[Job]], sort: str, descending: bool
) -> None:
    service, made = filled
    query = JobQuery(sort=sort, descending=descending)
    assert page_through(service, query) == expected(made, query)


@pytest.mark.parametrize(
    "query",
    [JobQuery(statuses=ACTIVE), JobQuery(statuses=frozenset({S.FAILED, S.CANCELLED}),
     sort="finishedAt"), JobQuery(tags=("sweep-3",), sort="loss", descending=False),
     JobQuery(tags=("sweep-3", "lr-1e-4"), sort="name"), JobQuery(text="lora"),
     JobQuery(text="LLAMA".casefold(), sort="progress"), JobQuery(text="out of mem"),
     JobQuery(text="ml"), JobQuery(text="job-0001", sort="duration"),
     JobQuery(text="résumé", statuses=TERMINAL), JobQuery(created_since=1_020.0, sort="status"),
     JobQuery(text="no such thing")],
)  # fmt: skip
@pytest.mark.parametrize("few_rows", [0, 2_000], ids=["walk the sort index", "sort the matches"])
def test_filters_page_through_in_order(
    filled: tuple[JobService, list[Job]],
    query: JobQuery,
    few_rows: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("trainmon.store.store.FEW_ROWS", few_rows)
    service, made = filled
    want = expected(made, query)
    assert page_through(service, query, limit=5) == want
    assert service.list_jobs(query, 5).total == len(want)


def test_the_ids_filter_takes_just_those(filled: tuple[JobService, list[Job]]) -> None:
    service, _ = filled
    ids = ("job-00003", "job-00042", "job-00077", "job-99999")
    found = service.list_jobs(JobQuery(ids=ids), 10).jobs
    assert sorted(j.id for j in found) == ["job-00003", "job-00042", "job-00077"]


def test_search_follows_changes_and_deletes(store: Store) -> None:
    service = JobService(store)
    job = make_jobs(1)[0]
    job = replace(job, id="job-search-1", name="plain", status=S.RUNNING, error=None, tags=())
    with store.write() as conn:
        store.insert_job(conn, job)
    assert page_through(service, JobQuery(text="exploded")) == []
    service.fail(job.id, "the run exploded")
    assert page_through(service, JobQuery(text="exploded")) == [job.id]
    service.delete(job.id)
    assert page_through(service, JobQuery(text="exploded")) == []
    assert page_through(service, JobQuery(text="plain")) == []


def test_search_text_is_literal(store: Store) -> None:
    """LIKE's % and _ and FTS5's quotes are plain characters in a search."""
    service = JobService(store)
    with store.write() as conn:
        for i, name in enumerate(['50%_done "quoted"', "5000 done", "a_b"]):
            store.insert_job(conn, replace(make_jobs(1)[0], id=f"job-lit-{i}", name=name))
    assert page_through(service, JobQuery(text="0%_")) == ["job-lit-0"]
    assert page_through(service, JobQuery(text='"quoted"')) == ["job-lit-0"]
    assert page_through(service, JobQuery(text="_")) == ["job-lit-2", "job-lit-0"]


def test_a_cursor_from_another_sort_is_a_bad_request(
    filled: tuple[JobService, list[Job]],
) -> None:
    service, _ = filled
    cursor = service.list_jobs(JobQuery(sort="name"), 3).next_cursor
    assert cursor is not None
    with pytest.raises(BadRequest, match="another query"):
        service.list_jobs(JobQuery(sort="loss"), 3, cursor)


def test_totals_are_exact_up_to_the_cap(
    filled: tuple[JobService, list[Job]], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, made = filled
    page = service.list_jobs(JobQuery(), 5)
    assert (page.total, page.total_exact) == (len(made), True)
    monkeypatch.setattr("trainmon.service.COUNT_CAP", 50)
    page = service.list_jobs(JobQuery(), 5)
    assert (page.total, page.total_exact) == (50, False)


def test_an_old_database_gets_sortable_searchable_rows(store: Store) -> None:
    """Migration 5 on rows written before it: derived columns, tags and search are filled."""
    made = make_jobs(12)
    with store.write() as conn:
        for job in made:
            store.insert_job(conn, job)
        # Back to how version 4 stored them: no derived values, no tag rows, no search index.
        blank = dict.fromkeys(("duration", "sort_name", "progress", "loss_value"))
        conn.execute(jobs.update().values(**blank, search_text=None, search_key=None))
        conn.execute(text("DELETE FROM job_tags"))
        if store.dialect == "sqlite":
            conn.execute(text("DROP TABLE jobs_search"))
            for trigger in ("insert", "update", "delete"):
                conn.execute(text(f"DROP TRIGGER jobs_search_{trigger}"))
        for column in ("duration", "sort_name", "progress", "loss_value", "search_key"):
            conn.execute(text(f"DROP INDEX IF EXISTS ix_jobs_status_{column}"))
        conn.execute(text("DROP INDEX IF EXISTS ix_jobs_search_key"))
        for column in ("duration", "sort_name", "progress", "loss_value", "search_text",
                       "search_key"):  # fmt: skip
            conn.execute(text(f"ALTER TABLE jobs DROP COLUMN {column}"))
        conn.execute(text("DELETE FROM trainmon_schema WHERE version >= 5"))
    assert store.migrate() >= 5
    service = JobService(store)
    for query in (JobQuery(sort="loss"), JobQuery(text="lora"), JobQuery(tags=("sweep-3",))):
        assert page_through(service, query, 4) == expected(made, query)
