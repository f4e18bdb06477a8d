"""A job and its row: how each field is stored and read back. Knows SQL types, nothing of
queries; the store and the migrations both use it."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from sqlalchemy import RowMapping

from trainmon.job_query import stored_sort_values
from trainmon.jsonlimits import MAX_RENDER_DEPTH, json_problem
from trainmon.models import Command, Job, JobStatus


def float_to_text(value: float | None) -> str | None:
    return None if value is None else repr(value)


def text_to_float(value: str | None) -> float | None:
    return None if value is None else float(value)


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
        step_at=row["step_at"],
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
        "step_at": job.step_at,
        **stored_sort_values(job),
    } | (job.config.raw if isinstance(job.config, UnreadableJson) else {})
