"""ASGI middleware: refuse foreign Host headers (DNS rebinding), cap request bodies, and add
security headers. Plain ASGI so that a refused request costs no body read."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trainmon.errors import BadRequest, PayloadTooLarge, TrainmonError

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def host_without_port(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def send_error(send: Send, error: TrainmonError) -> None:
    body = json.dumps(error.to_json()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    def __init__(self, app: ASGIApp, *, host_names: frozenset[str], max_body: int) -> None:
        self.app = app
        self.host_names = host_names
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = host_without_port(headers.get("host", ""))
        if host not in self.host_names:
            await send_error(send, BadRequest(f"unknown Host header {host!r}: request refused"))
            return
        declared = headers.get("content-length")
        if declared is not None and not declared.isdigit():
            await send_error(send, BadRequest("invalid Content-Length header"))
            return
        if declared is not None and int(declared) > self.max_body:
            await send_error(send, PayloadTooLarge(f"request body over {self.max_body} bytes"))
            return
        if declared is None and scope["method"] in ("POST", "PUT", "PATCH"):
            # A streamed (chunked) body has no length to check up front: read it, up to the cap.
            body = await self._read_capped(receive)
            if body is None:
                await send_error(send, PayloadTooLarge(f"request body over {self.max_body} bytes"))
                return
            receive = self._replay(body, receive)
        await self.app(scope, receive, self._with_headers(send))

    async def _read_capped(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)  # disconnected: the app will see an empty body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    def _replay(body: bytes, receive: Receive) -> Receive:
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    def _with_headers(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra: list[tuple[bytes, bytes]] = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", CSP.encode()),
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return wrapped
