"""API errors: one JSON shape, a stable code and an HTTP status for every failure.

    {"error": {"code": "<codespace>/<code or name>", "message": "<field>: what is wrong", ...}}

A rejected transaction keeps the (codespace, code) of its TxResult, e.g. "tx/5" (nonce replayed) or
"bank/1" (insufficient funds), plus the registered name; errors of the API itself use the "api"
codespace with a name ("api/invalid_body"), queries the "query" codespace.
"""

from __future__ import annotations

import re
from typing import Iterable

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ..app.abc import TxResult
from ..core import errors as core_errors
from ..core.errors import ErrorCatalog
from .schemas import ErrorBody, ErrorDetail

_FIELD = re.compile(r"^[A-Za-z_][\w.\[\]]*$")

# HTTP statuses of rejected txs; any other rejection is a plain 400.
_TX_STATUS = {
    (core_errors.ERR_TOO_LARGE.codespace, core_errors.ERR_TOO_LARGE.code): 413,
    (core_errors.ERR_NONCE_REPLAY.codespace, core_errors.ERR_NONCE_REPLAY.code): 409,
    (core_errors.ERR_NONCE_GAP.codespace, core_errors.ERR_NONCE_GAP.code): 409,
    (core_errors.ERR_DUPLICATE.codespace, core_errors.ERR_DUPLICATE.code): 409,
    (core_errors.ERR_QUOTA.codespace, core_errors.ERR_QUOTA.code): 429,
    (core_errors.ERR_MEMPOOL_FULL.codespace, core_errors.ERR_MEMPOOL_FULL.code): 503,
}
_HTTP_NAMES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
               413: "body_too_large", 415: "unsupported_media_type", 422: "invalid_body", 431: "headers_too_large",
               500: "internal", 503: "unavailable"}
# The scope key where HeadAsGet keeps a request's own method (see middleware.py).
METHOD_KEY = "cityledger.method"


class ApiError(Exception):
    """An error answered as JSON: HTTP status, stable code, message naming the bad field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, **extra) -> None:
        super().__init__(message)
        self.status = status
        self.detail = ErrorDetail(code=code, message=message, field=field or field_of(message), **extra)

    def response(self) -> Response:
        return error_response(self.status, self.detail)


def error_response(status: int, detail: ErrorDetail) -> Response:
    """The JSON response of an error."""
    try:
        body = msgspec.json.encode(ErrorBody(error=detail))
    except UnicodeEncodeError:  # a message quoting a lone surrogate from the request: escape it
        message = detail.message.encode("utf-8", "backslashreplace").decode("utf-8")
        field = None if detail.field is None else detail.field.encode("utf-8", "backslashreplace").decode()
        body = msgspec.json.encode(ErrorBody(error=msgspec.structs.replace(detail, message=message, field=field)))
    return Response(body, status_code=status, media_type="application/json")


def field_of(message: str) -> str | None:
    """The field a message names: by convention, the text before its first colon."""
    head = message.split(":", 1)[0].strip()
    return head if ":" in message and _FIELD.match(head) else None


def invalid_param(message: str) -> ApiError:
    """A bad path or query parameter (the message starts with its name)."""
    return ApiError(400, "api/invalid_param", message)


def invalid_body(message: str) -> ApiError:
    """A bad request body (the message starts with the field's name)."""
    return ApiError(400, "api/invalid_body", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "api/not_found", message)


class ErrorNames:
    """Maps (codespace, code) to the registered error name, over the core and every module."""

    def __init__(self, catalogs: Iterable[ErrorCatalog]) -> None:
        self._names = {(c.codespace, code): name for c in catalogs for code, name in c.codes().items()}

    def name(self, codespace: str, code: int) -> str | None:
        return self._names.get((codespace, code))


def tx_rejected(result: TxResult, tx_id: bytes, names: ErrorNames) -> ApiError:
    """The API error of a tx rejected at check time (or committed with a failure code)."""
    status = _TX_STATUS.get((result.codespace, result.code), 400)
    return ApiError(status, f"{result.codespace}/{result.code}", result.log, codespace=result.codespace,
                    abci_code=result.code, name=names.name(result.codespace, result.code), tx_id=tx_id.hex())


def install_handlers(app: FastAPI) -> None:
    """Answer every error, including FastAPI's own, in the one JSON shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        location = [str(part) for part in first.get("loc", ()) if part not in ("query", "path", "body")]
        name = ".".join(location) or "request"
        message = f"{name}: {first.get('msg', 'invalid value')}"
        if "input" in first and not isinstance(first["input"], (dict, list)):
            message += f", got {first['input']!r}"
        return error_response(400, ErrorDetail(code="api/invalid_param", message=message, field=name))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        name = _HTTP_NAMES.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"path: no endpoint {request.method} {request.url.path}"
        elif exc.status_code == 405:
            method = request.scope.get(METHOD_KEY, request.method)
            message = f"method: {method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, ErrorDetail(code=f"api/{name}", message=message,
                                                           field=field_of(message)))

    # Unexpected exceptions are answered by middleware.CatchAll, not an exception handler: Starlette
    # re-raises after such a handler, and uvicorn then closes the connection under the client.


def internal_error(request_id: str) -> Response:
    """The 500 answer: a generic message and the id under which the traceback was logged, no exception text."""
    return error_response(500, ErrorDetail(code="api/internal",
                                           message=f"internal error: logged by the node as request {request_id}"))
