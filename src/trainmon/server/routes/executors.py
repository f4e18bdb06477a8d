"""What this server can run: its executor's slots, running jobs and GPUs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from trainmon.server.deps import ExecutorDep, ReadAccess, SettingsDep

router = APIRouter(prefix="/api", tags=["executors"], dependencies=[ReadAccess])


@router.get("/executors")
def list_executors(executor: ExecutorDep, settings: SettingsDep) -> dict[str, Any]:
    """``active`` is false on a monitor-only server (``--no-executor``): it starts no job."""
    found = executor.resources()
    return {
        "executors": [
            {
                "name": found.name,
                "active": settings.run_executor,
                "slots": found.slots,
                "running": found.running,
                "gpus": found.gpus,
            }
        ]
    }
