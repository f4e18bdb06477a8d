"""Liveness: answers without touching the database, so it is ready as soon as we listen."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok", "version": version("trainmon")}
