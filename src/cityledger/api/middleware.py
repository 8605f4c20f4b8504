"""ASGI middleware around the API: bounded headers, HEAD on every GET route, a 500 that keeps the connection."""

from __future__ import annotations

import logging
import secrets

from starlette.requests import ClientDisconnect

from .codec import release_body_bytes
from .connections import MAX_HEADER_BYTES
from .errors import METHOD_KEY, ApiError, internal_error

log = logging.getLogger("cityledger.api")


class BoundedHeaders:
    """Answer 431 to a request whose target and headers exceed MAX_HEADER_BYTES.

    h11 bounds only headers that are still arriving; a request that came in one read is complete
    before any limit looks at it, so the total is checked here.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            size += sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > MAX_HEADER_BYTES:
                error = ApiError(431, "api/headers_too_large",
                                 f"headers: {size} bytes exceed the limit of {MAX_HEADER_BYTES}")
                await error.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyBudget:
    """Give a request's body bytes back to codec.MAX_BODY_BYTES_IN_FLIGHT when it ends, however it ends."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = dict(scope)  # read_body records its share in this copy, which Starlette's Request wraps
        try:
            await self.app(scope, receive, send)
        finally:
            release_body_bytes(scope)


class HeadAsGet:
    """Serve HEAD as the GET of the same path, minus the body (RFC 9110 section 9.3.2)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET", METHOD_KEY: "HEAD"}, receive, without_body)


class CatchAll:
    """Answer any exception a route lets escape with a generic 500 and log it with a request id.

    Starlette's handler for Exception answers and then re-raises, and uvicorn closes the connection on
    a re-raised exception, so a keep-alive client's next call failed with ReadError. Catching here,
    inside that machinery, leaves the connection usable.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except ClientDisconnect:
            return  # the client left while sending its body: there is no one to answer
        except Exception:
            request_id = secrets.token_hex(8)
            log.exception("request %s: %s %s failed", request_id, scope.get("method"), scope.get("path"))
            if started:  # half an answer is out; only closing the connection can tell the client
                raise
            await internal_error(request_id)(scope, receive, send)
