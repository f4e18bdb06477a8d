"""One JSON error shape for every failure: ``{"error": {"code", "message", "field"?}}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from trainmon.errors import BadRequest, TrainmonError, ValidationFailed

HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
}


def error_response(error: TrainmonError) -> JSONResponse:
    wait = getattr(error, "retry_after", None)
    headers = {"Retry-After": str(wait)} if wait is not None else None
    return JSONResponse(error.to_json(), status_code=error.status, headers=headers)


def validation_to_error(exc: RequestValidationError) -> TrainmonError:
    """Name the first failing field; malformed JSON is a 400, not a validation error."""
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        return BadRequest("malformed JSON body")
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    where = ".".join(loc)
    message = str(first.get("msg", "invalid input"))
    return ValidationFailed(f"{where}: {message}" if where else message, field=where or None)


def install_error_handlers(app: FastAPI) -> None:
    async def on_trainmon(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TrainmonError)
        return error_response(exc)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_to_error(exc))

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = HTTP_CODES.get(exc.status_code, "bad_request")
        body = {"error": {"code": code, "message": str(exc.detail)}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def on_recursion(_: Request, exc: Exception) -> JSONResponse:
        return error_response(BadRequest("JSON nested too deeply"))

    app.add_exception_handler(TrainmonError, on_trainmon)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RecursionError, on_recursion)
