"""What a list of jobs asks for (filters, search, sort) and how its pages are marked. Pure.

A page's cursor carries the last row's sort value and id, and a fingerprint of the query it
came from: a cursor handed to another query is refused instead of paging from a wrong place.
Sort values are computed here from a ``Job`` and stored beside it (``store/store.py``), so the
database orders and the cursor compares the very same numbers and strings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trainmon.models import ACTIVE, TERMINAL, Job, JobStatus, is_job_id

# API name -> the stored column that orders it.
SORT_COLUMNS: dict[str, str] = {
    "createdAt": "created_at",
    "startedAt": "started_at",
    "finishedAt": "finished_at",
    "duration": "duration",
    "name": "sort_name",
    "status": "status",
    "progress": "progress",
    "loss": "loss_value",
}
DEFAULT_SORT = "-createdAt"
MAX_QUERY_CHARS = 200
MAX_TAGS = 10
MAX_IDS = 500
STATUS_GROUPS = {"active": ACTIVE, "finished": TERMINAL}

SortValue = float | str | None


class QueryError(ValueError):
    """A bad query parameter; ``field`` names it for the 422."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class JobQuery:
    statuses: frozenset[JobStatus] | None = None  # None: every status
    tags: tuple[str, ...] = ()  # a job must have every one
    text: str | None = None  # a case-insensitive substring of name, id, tags or error
    created_since: float | None = None
    created_until: float | None = None
    ids: tuple[str, ...] | None = None  # just these jobs (the page's fallback poll)
    sort: str = "createdAt"
    descending: bool = True

    @property
    def column(self) -> str:
        return SORT_COLUMNS[self.sort]

    def fingerprint(self) -> str:
        """Everything that decides the rows and their order; not the page size."""
        parts = [
            sorted(s.value for s in self.statuses) if self.statuses is not None else None,
            sorted(self.tags),
            self.text,
            self.created_since,
            self.created_until,
            sorted(self.ids) if self.ids is not None else None,
            self.sort,
            self.descending,
        ]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def parse_statuses(value: str | None) -> frozenset[JobStatus] | None:
    """``"failed,cancelled"``, ``"active"``, ``"finished"`` or a mix; None for no filter."""
    if value is None or not value.strip():
        return None
    found: set[JobStatus] = set()
    for part in (p.strip() for p in value.split(",")):
        if part in STATUS_GROUPS:
            found |= STATUS_GROUPS[part]
            continue
        try:
            found.add(JobStatus(part))
        except ValueError:
            allowed = ", ".join([*STATUS_GROUPS, *(s.value for s in JobStatus)])
            raise QueryError(
                f"unknown status {part!r}; use a comma list of: {allowed}", "status"
            ) from None
    return frozenset(found)


def parse_sort(value: str | None) -> tuple[str, bool]:
    """``"-finishedAt"`` -> ``("finishedAt", True)``: a leading ``-`` sorts descending."""
    text = (value or DEFAULT_SORT).strip()
    descending = text.startswith("-")
    name = text.removeprefix("-").removeprefix("+")
    if name not in SORT_COLUMNS:
        allowed = ", ".join(SORT_COLUMNS)
        raise QueryError(
            f"unknown sort field {name!r}; use one of {allowed}, with - for descending", "sort"
        )
    return name, descending


def parse_text(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > MAX_QUERY_CHARS:
        raise QueryError(f"the search text is over {MAX_QUERY_CHARS} characters", "q")
    return value.strip().casefold()


def parse_tags(values: list[str] | None) -> tuple[str, ...]:
    tags = tuple(dict.fromkeys(t.strip() for t in values or () if t.strip()))
    if len(tags) > MAX_TAGS:
        raise QueryError(f"at most {MAX_TAGS} tags at once", "tag")
    if any(len(t) > MAX_QUERY_CHARS for t in tags):
        raise QueryError(f"a tag is over {MAX_QUERY_CHARS} characters", "tag")
    return tags


def parse_ids(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    ids = tuple(dict.fromkeys(i.strip() for i in value.split(",") if i.strip()))
    if len(ids) > MAX_IDS or not all(is_job_id(i) for i in ids):
        raise QueryError(f"ids: a comma list of at most {MAX_IDS} job ids", "ids")
    return ids


def parse_time(value: str | None, field: str) -> float | None:
    """An ISO 8601 date or time (UTC unless it says otherwise) as epoch seconds."""
    if value is None or not value.strip():
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise QueryError(
            f"not an ISO 8601 date or time: {value!r} (e.g. 2026-12-01 or 2026-12-01T08:00:00Z)",
            field,
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def build_query(
    status: str | None = None,
    tags: list[str] | None = None,
    text: str | None = None,
    created_since: str | None = None,
    created_until: str | None = None,
    sort: str | None = None,
    ids: str | None = None,
) -> JobQuery:
    """A query from the API's parameters; ``QueryError`` names the first bad one."""
    name, descending = parse_sort(sort)
    return JobQuery(
        statuses=parse_statuses(status),
        tags=parse_tags(tags),
        text=parse_text(text),
        created_since=parse_time(created_since, "createdSince"),
        created_until=parse_time(created_until, "createdUntil"),
        ids=parse_ids(ids),
        sort=name,
        descending=descending,
    )


# -- the stored sort values ---------------------------------------------------------------


def sort_name(name: str) -> str:
    return name.casefold()[:200]


def duration(job: Job) -> float | None:
    """Seconds from start to end; None while it runs (or if it never started)."""
    if job.started_at is None or job.finished_at is None:
        return None
    return max(0.0, job.finished_at - job.started_at)


def progress_fraction(job: Job) -> float | None:
    """Step over total, uncapped (a step past its total sorts above 1); None if unknown."""
    if job.current_step is None or not job.total_steps or job.total_steps <= 0:
        return None
    return job.current_step / job.total_steps


def loss_value(job: Job) -> float | None:
    """The loss to sort by; NaN (a diverged run) has no order and sorts with the unknown."""
    loss = job.current_loss
    return None if loss is None or math.isnan(loss) else loss


def search_text(job: Job) -> str:
    """What a free-text search looks in, folded to lower case."""
    parts = [job.name, job.id, *job.tags, job.error or ""]
    return " ".join(p for p in parts if p).casefold()


def stored_sort_values(job: Job) -> dict[str, Any]:
    """The derived columns stored with each job row."""
    return {
        "duration": duration(job),
        "sort_name": sort_name(job.name),
        "progress": progress_fraction(job),
        "loss_value": loss_value(job),
        "search_text": search_text(job),
    }


def sort_value(job: Job, sort: str) -> SortValue:
    column = SORT_COLUMNS[sort]
    if column in ("created_at", "started_at", "finished_at"):
        value: SortValue = getattr(job, column)
        return value
    if column == "status":
        return job.status.value
    derived: SortValue = stored_sort_values(job)[column]
    return derived


# -- cursors ------------------------------------------------------------------------------


def encode_cursor(query: JobQuery, job: Job) -> str:
    raw = json.dumps([query.fingerprint(), sort_value(job, query.sort), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(query: JobQuery, cursor: str) -> tuple[SortValue, str]:
    """``(sort value, id)`` after which the next page starts; ``QueryError`` for a cursor
    that is not one of ours or was made for another query."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fingerprint, value, job_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise QueryError("invalid cursor: pass back the nextCursor of a page", "cursor") from None
    if not isinstance(fingerprint, str):
        raise QueryError("invalid cursor: pass back the nextCursor of a page", "cursor")
    if fingerprint != query.fingerprint():
        raise QueryError(
            "this cursor belongs to another query (filter or sort changed): start from the "
            "first page",
            "cursor",
        )
    ok_value = value is None or (
        isinstance(value, str)
        if query.column in ("status", "sort_name")
        else (isinstance(value, int | float) and not isinstance(value, bool))
    )
    if not ok_value or not isinstance(job_id, str) or not is_job_id(job_id):
        raise QueryError("invalid cursor: pass back the nextCursor of a page", "cursor")
    if isinstance(value, float) and math.isnan(value):
        raise QueryError("invalid cursor: pass back the nextCursor of a page", "cursor")
    return value, job_id
