"""Request bodies (Pydantic) and the job's JSON shape. Converts to and from the service's
plain dataclasses; nothing here touches the database."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic.alias_generators import to_camel
from typing_extensions import TypedDict

from trainmon.jsonlimits import MAX_CONFIG_DEPTH, MAX_JSON_BYTES, json_problem
from trainmon.models import (
    JOB_ID_PATTERN,
    Command,
    Job,
    JobStatus,
    Point,
    float_to_json,
    is_stale,
)
from trainmon.reporting import LOSS, ProgressReport
from trainmon.service import JobCreate
from trainmon.store.rows import UnreadableJson

MAX_STEP = 2**63 - 1
MAX_POINTS = 100_000
MAX_METRICS = 200
log = logging.getLogger(__name__)

MAX_METRIC_KEY_LENGTH = 200


def plain_text(value: str) -> str:
    """Text every store can keep and every client can read: PostgreSQL refuses NUL, and a lone
    surrogate (legal in JSON's \\u escapes) cannot be encoded as UTF-8 in an answer."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


PlainText = AfterValidator(plain_text)


Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), PlainText
]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100), PlainText]
Arg = Annotated[str, StringConstraints(max_length=10_000), PlainText]
EnvName = Annotated[str, StringConstraints(min_length=1, max_length=256), PlainText]
EnvValue = Annotated[str, StringConstraints(max_length=100_000), PlainText]
# Metric keys only ever travel inside JSON text, which escapes anything; checking each key of
# 100,000 points in Python would cost more than the rest of the batch.
MetricKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_METRIC_KEY_LENGTH)]
Step = Annotated[int, Field(ge=0, le=MAX_STEP)]
JobId = Annotated[str, StringConstraints(pattern=JOB_ID_PATTERN)]
Reporter = Annotated[str, StringConstraints(min_length=1, max_length=64), PlainText]
ErrorText = Annotated[str, StringConstraints(max_length=20_000), PlainText]
# A number, or the strings JSON uses for what it cannot spell: Pydantic's float reads them
# (and other numeric strings) itself, far cheaper than a union with a Literal.
Scalar = Annotated[
    float, Field(description='a number, or "NaN", "Infinity", "-Infinity" for a diverged value')
]


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class CommandIn(Body):
    argv: list[Arg] = Field(min_length=1, max_length=1_000)
    cwd: Annotated[str, StringConstraints(max_length=4_096), PlainText] | None = None
    env: dict[EnvName, EnvValue] = Field(default_factory=dict, max_length=500)

    @field_validator("argv")
    @classmethod
    def _program_named(cls, argv: list[str]) -> list[str]:
        if not argv[0]:
            raise ValueError("the program name is empty")
        return argv


class JobCreateIn(Body):
    name: Name
    total_steps: Annotated[int, Field(gt=0, le=MAX_STEP)] | None = None
    config: dict[str, Any] = Field(default_factory=dict, max_length=1_000)
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    id: JobId | None = None
    command: CommandIn | None = None
    grace_seconds: Annotated[float, Field(ge=0, le=3_600)] = 10.0

    @field_validator("config")
    @classmethod
    def _config_is_plain_json(cls, config: dict[str, Any]) -> dict[str, Any]:
        # A config too deep to serialise used to be stored, and then broke every job list.
        problem = json_problem(config, max_depth=MAX_CONFIG_DEPTH, max_bytes=MAX_JSON_BYTES)
        if problem is not None:
            raise ValueError(f"config {problem}")
        return config

    @field_validator("tags")
    @classmethod
    def _tags_fit(cls, tags: list[str]) -> list[str]:
        problem = json_problem(tags, max_depth=1, max_bytes=MAX_JSON_BYTES)
        if problem is not None:
            raise ValueError(f"tags {problem}")
        return tags

    def to_spec(self) -> JobCreate:
        command = None
        if self.command is not None:
            command = Command(tuple(self.command.argv), self.command.cwd, dict(self.command.env))
        return JobCreate(
            name=self.name,
            total_steps=self.total_steps,
            config=self.config,
            tags=tuple(self.tags),
            id=self.id,
            command=command,
            grace_seconds=self.grace_seconds,
        )


class PointIn(TypedDict, total=False):
    """One reported point. A TypedDict, not a model: a batch holds up to 100,000 of these and
    validating dicts is four times cheaper than building model instances."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    step: Step | None
    time: Annotated[float, Field(ge=0, le=1e11, allow_inf_nan=False)] | None
    loss: Scalar | None
    metrics: Annotated[dict[MetricKey, Scalar], Field(max_length=MAX_METRICS)] | None


class ProgressIn(Body):
    reporter: Reporter = "default"
    seq: Step
    points: list[PointIn] = Field(default_factory=list, max_length=MAX_POINTS)
    status: Literal["running", "completed", "failed", "cancelled"] | None = None
    error: ErrorText | None = None
    exit_code: Annotated[int, Field(ge=-(2**31), le=2**31 - 1)] | None = None
    end_reason: Annotated[str, StringConstraints(max_length=1_000), PlainText] | None = None
    current_step: Step | None = None
    total_steps: Annotated[int, Field(gt=0, le=MAX_STEP)] | None = None
    loss: Scalar | None = None
    source: Literal["sdk", "output"] = "sdk"

    def to_report(self, now: float) -> ProgressReport:
        points = []
        for p in self.points:
            metrics = p.get("metrics")
            values = dict(metrics) if metrics else {}
            loss = p.get("loss")
            if loss is not None:
                values[LOSS] = loss
            when = p.get("time")
            points.append(Point(p.get("step"), now if when is None else when, values))
        return ProgressReport(
            reporter=self.reporter,
            seq=self.seq,
            points=points,
            status=JobStatus(self.status) if self.status else None,
            error=self.error,
            exit_code=self.exit_code,
            end_reason=self.end_reason,
            current_step=self.current_step,
            total_steps=self.total_steps,
            loss=self.loss,
            source=self.source,
        )


def iso(ts: float | None) -> str | None:
    if ts is None or not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def scalars_to_json(values: dict[str, float]) -> dict[str, float | str | None]:
    return {k: float_to_json(v) for k, v in values.items()}


REDACTED = "[redacted]"
# Names whose values are secrets by convention (GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY, ...).
SECRET_NAME = re.compile(r"TOKEN|SECRET|KEY|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
# user:password@ inside a URL (DATABASE_URL=postgresql://me:hunter2@db/x).
URL_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):[^/@\s]*@")


def redacted_env(env: dict[str, str]) -> dict[str, str]:
    """A job's environment as readers see it: the supervisor gets the real values, anyone who
    can read the API (tokenless on loopback) gets the names and no secrets."""
    return {
        name: REDACTED if SECRET_NAME.search(name) else URL_PASSWORD.sub(rf"\1:{REDACTED}@", value)
        for name, value in env.items()
    }


def job_to_api(job: Job, *, stale: bool = False) -> dict[str, Any]:
    command = None
    if job.command is not None:
        command = {
            "argv": list(job.command.argv),
            "cwd": job.command.cwd,
            "env": redacted_env(job.command.env),
        }
    return {
        "id": job.id,
        "name": job.name,
        "status": job.status.value,
        "progress": round(job.progress, 3),
        "currentStep": job.current_step,
        "totalSteps": job.total_steps,
        "currentLoss": float_to_json(job.current_loss),
        "metrics": scalars_to_json(job.metrics),
        "createdAt": iso(job.created_at),
        "startedAt": iso(job.started_at),
        "finishedAt": iso(job.finished_at),
        "updatedAt": iso(job.updated_at),
        "lastSeenAt": iso(job.last_seen_at),
        "stepAt": iso(job.step_at),
        "stale": stale,
        "cancelRequested": job.cancel_requested,
        "exitCode": job.exit_code,
        "error": job.error,
        "endReason": job.end_reason,
        "executor": job.executor,
        "config": job.config,
        "tags": list(job.tags),
        "command": command,
        "graceSeconds": job.grace_seconds,
    }


def render_problem(job: Job) -> str | None:
    """Why a stored job's config cannot be shown (a row written around the API's limits); the
    store checks each stored text once and marks such a job (``UnreadableJson``)."""
    return job.config.reason if isinstance(job.config, UnreadableJson) else None


def render_job(job: Job, now: float, heartbeat_interval: float) -> dict[str, Any]:
    """The job's JSON as every reader gets it: API, event stream and first paint alike. A job
    whose config cannot be shown still lists (``config: null`` and ``renderError``): one bad
    row must not fail every list that includes it. Pure but for that log line."""
    stale = is_stale(job.status, job.last_seen_at, now, heartbeat_interval)
    body = job_to_api(job, stale=stale)
    problem = render_problem(job)
    if problem is not None:
        log.warning("job %s: %s; shown with config null", job.id, problem)
        body["config"] = None
        body["renderError"] = problem
    return body


@dataclass(frozen=True, slots=True)
class Renderer:
    """``render_job`` with this server's heartbeat interval and clock: what routes call."""

    heartbeat_interval: float
    clock: Callable[[], float] = time.time

    def __call__(self, job: Job, now: float | None = None) -> dict[str, Any]:
        return render_job(job, self.clock() if now is None else now, self.heartbeat_interval)
