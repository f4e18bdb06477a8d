"""The ingest hot path, shortened: a progress POST that carries the bearer token goes straight to
``accept_report`` (routes/jobs.py), past FastAPI's routing and dependency injection, which cost
a small report more than storing it. Anything else (a browser session, no token, a wrong one)
goes on to the app, whose route answers with the same function, a little slower.

It sits inside GuardMiddleware, so the Host check, the body cap and the security headers are
the same for both ways.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from trainmon.errors import TrainmonError
from trainmon.server.auth import bearer_of, valid_token
from trainmon.server.errors import validation_to_error
from trainmon.server.routes.jobs import accept_report

PROGRESS = re.compile(r"^/api/training/jobs/([^/]+)/progress$")


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # the client went away; the empty body is refused
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_json(send: Send, status: int, payload: Any, headers: dict[str, str]) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class IngestFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = (
            PROGRESS.match(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        state = scope["app"].state if found else None
        if found is None or state is None or not valid_token(state.settings, bearer_of(scope)):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        try:
            answer = await accept_report(state.ingest, state.service.clock, found[1], body)
        except RequestValidationError as exc:
            await answer_error(send, validation_to_error(exc))
            return
        except TrainmonError as exc:
            await answer_error(send, exc)
            return
        await send_json(send, 200, answer, {})


async def answer_error(send: Send, error: TrainmonError) -> None:
    wait = getattr(error, "retry_after", None)
    await send_json(
        send, error.status, error.to_json(), {"Retry-After": str(wait)} if wait is not None else {}
    )
