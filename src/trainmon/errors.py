"""One error family: each carries its HTTP status and a stable code; one handler renders it."""

from __future__ import annotations


class TrainmonError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return {"error": body}


class BadRequest(TrainmonError):
    pass


class ValidationFailed(TrainmonError):
    status = 422
    code = "validation_error"


class Unauthorized(TrainmonError):
    status = 401
    code = "unauthorized"


class Forbidden(TrainmonError):
    status = 403
    code = "forbidden"


class NotFound(TrainmonError):
    status = 404
    code = "not_found"


class Conflict(TrainmonError):
    status = 409
    code = "conflict"


class PayloadTooLarge(TrainmonError):
    status = 413
    code = "payload_too_large"


class ServerBusy(TrainmonError):
    """Over capacity for now: the client should wait ``retry_after`` seconds and send again
    (the SDK does, keeping its points meanwhile)."""

    status = 503
    code = "server_busy"
    retry_after = 1
