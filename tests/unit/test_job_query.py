"""The job list's query language: statuses, sort, text, tags, times, ids, and cursors."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from trainmon.job_query import (
    MAX_QUERY_CHARS,
    JobQuery,
    QueryError,
    build_query,
    decode_cursor,
    encode_cursor,
    loss_value,
    parse_sort,
    parse_statuses,
    progress_fraction,
    search_text,
    sort_value,
    stored_sort_values,
)
from trainmon.models import ACTIVE, TERMINAL, Job, JobStatus

S = JobStatus
JOB = Job(id="job-abc-1", name="Llama-LoRA r16", status=S.COMPLETED, created_at=100.0,
          updated_at=200.0, started_at=110.0, finished_at=170.5, current_step=50,
          total_steps=40, current_loss=0.25, tags=("sweep-3", "LoRA"), error="Boom")  # fmt: skip


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("active", ACTIVE), ("finished", TERMINAL),
     ("running", {S.RUNNING}), ("failed,cancelled", {S.FAILED, S.CANCELLED}),
     ("active, failed", ACTIVE | {S.FAILED}), ("active ", ACTIVE)],
)  # fmt: skip
def test_statuses(value: str | None, expected: set[JobStatus] | None) -> None:
    assert parse_statuses(value) == (None if expected is None else frozenset(expected))


@pytest.mark.parametrize("value", ["Running", "done", "failed,,", "*"])
def test_an_unknown_status_names_the_choices(value: str) -> None:
    with pytest.raises(QueryError, match="use a comma list of: active, finished, pending") as e:
        parse_statuses(value)
    assert e.value.field == "status"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, ("createdAt", True)), ("name", ("name", False)), ("-loss", ("loss", True)),
     ("+finishedAt", ("finishedAt", False)), ("duration", ("duration", False))],
)  # fmt: skip
def test_sort(value: str | None, expected: tuple[str, bool]) -> None:
    assert parse_sort(value) == expected


@pytest.mark.parametrize("value", ["created_at", "-", "--name", "size"])
def test_an_unknown_sort_field_is_named(value: str) -> None:
    with pytest.raises(QueryError, match="unknown sort field") as e:
        parse_sort(value)
    assert e.value.field == "sort"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"text": "x" * (MAX_QUERY_CHARS + 1)}, "q"), ({"created_since": "yesterday"}, "createdSince"),
     ({"created_until": "2026-13-01"}, "createdUntil"),
     ({"tags": [f"t{i}" for i in range(11)]}, "tag"), ({"tags": ["x" * 201]}, "tag"),
     ({"ids": "a,b"}, "ids"),
     ({"ids": ",".join(f"job-{i:04d}" for i in range(501))}, "ids"), ({"sort": "x"}, "sort")],
)  # fmt: skip
def test_bad_parameters_name_their_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(QueryError) as caught:
        build_query(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_a_full_query() -> None:
    query = build_query(
        "failed,cancelled", [" sweep-3 ", "lr", "sweep-3"], "  LoRA ", "2026-12-01",
        "2026-12-02T06:00:00+02:00", "-finishedAt", "job-aaa-1",
    )  # fmt: skip
    assert query == JobQuery(
        statuses=frozenset({S.FAILED, S.CANCELLED}), tags=("sweep-3", "lr"), text="lora",
        created_since=1796083200.0, created_until=1796184000.0, ids=("job-aaa-1",),
        sort="finishedAt", descending=True,
    )  # fmt: skip


def test_derived_values() -> None:
    assert progress_fraction(JOB) == 1.25, "a step past its total sorts past 100 %"
    assert progress_fraction(replace(JOB, total_steps=0)) is None
    assert loss_value(replace(JOB, current_loss=math.nan)) is None
    assert loss_value(replace(JOB, current_loss=math.inf)) == math.inf
    assert search_text(JOB) == "llama-lora r16 job-abc-1 sweep-3 lora boom"
    values = stored_sort_values(JOB)
    assert values["duration"] == 60.5 and values["sort_name"] == "llama-lora r16"
    assert stored_sort_values(replace(JOB, finished_at=None))["duration"] is None
    assert sort_value(JOB, "status") == "completed" and sort_value(JOB, "createdAt") == 100.0


@pytest.mark.parametrize("sort", ["createdAt", "finishedAt", "name", "status", "loss", "duration"])
def test_a_cursor_round_trips_for_its_own_query(sort: str) -> None:
    query = JobQuery(sort=sort)
    assert decode_cursor(query, encode_cursor(query, JOB)) == (sort_value(JOB, sort), JOB.id)
    unfinished = replace(JOB, finished_at=None)
    if sort in ("finishedAt", "duration"):
        assert decode_cursor(query, encode_cursor(query, unfinished)) == (None, JOB.id)


def test_a_cursor_from_another_query_is_refused() -> None:
    cursor = encode_cursor(JobQuery(sort="name"), JOB)
    for other in (JobQuery(sort="name", descending=False), JobQuery(sort="loss"),
                  JobQuery(sort="name", text="x"), JobQuery(sort="name", tags=("a",))):  # fmt: skip
        with pytest.raises(QueryError, match="belongs to another query"):
            decode_cursor(other, cursor)


@pytest.mark.parametrize("cursor", ["", "!!", "e30", "WzEsMiwzXQ", "x" * 40])
def test_a_made_up_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(QueryError, match="invalid cursor"):
        decode_cursor(JobQuery(), cursor)
