"""Connection limits of the HTTP server: time to send headers, idle time, and how many connections.

uvicorn (h11) arms its keep-alive timer only after a first response, and any byte cancels it, so a
client that connects and sends nothing, or dribbles a header line every few seconds, held its socket
for ever; 300 such sockets exhausted a node's file descriptors and stopped every request. uvicorn's
limit_concurrency does not help there: it answers 503 to requests, but still accepts and keeps the
idle sockets. So the server runs a subclass of uvicorn's H11Protocol that adds the three bounds:

- HEADER_TIMEOUT_S: from connection open (or the previous response) until a request's headers are
  complete. Past it the connection is closed, with a 408 if part of a request had arrived.
- IDLE_TIMEOUT_S: uvicorn's keep-alive timeout, armed from connection open too: no byte for that long
  while no request is in progress closes the connection silently (what browsers expect of keep-alive).
- MAX_CONNECTIONS (at most the file-descriptor limit less RESERVED_FDS): a connection past it closes
  the connection that has waited longest for a request, since a waiting socket is the cheap one to
  drop and an attacker's are always waiting; if every connection is mid-request, the new one gets 503.
  Each connection runs at most one request at a time, so this also bounds concurrent requests.

A subclass of the protocol uvicorn already runs is the smallest change that adds what it lacks: the
server's speed, its other settings and every caller of api.serve stay as they were.
"""

from __future__ import annotations

import asyncio
import resource
from dataclasses import dataclass

import msgspec
from uvicorn.protocols.http.h11_impl import H11Protocol

from .schemas import ErrorBody, ErrorDetail

HEADER_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 5
MAX_CONNECTIONS = 1024
# File descriptors kept for everything but client sockets: SQLite, logs, CometBFT RPC, the listener.
RESERVED_FDS = 64
# The most bytes of a request's target plus headers: h11 refuses more while they are still arriving
# (uvicorn's plain-text 400), middleware.BoundedHeaders once they are complete (431).
MAX_HEADER_BYTES = 16 * 1024


@dataclass(frozen=True)
class ServerLimits:
    """The connection bounds one server runs with (tests shrink them)."""

    header_timeout_s: float = HEADER_TIMEOUT_S
    idle_timeout_s: int = IDLE_TIMEOUT_S
    max_connections: int = MAX_CONNECTIONS

    def effective_max_connections(self) -> int:
        """max_connections, lowered so client sockets can never take the descriptors the node needs."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(1, min(self.max_connections, soft - RESERVED_FDS))


def raw_error(status: int, reason: str, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection, for answers outside any request."""
    body = msgspec.json.encode(ErrorBody(error=ErrorDetail(code=code, message=message)))
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n")
    return head.encode("ascii") + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline, an idle timer from the start, and a connection cap."""

    limits: ServerLimits = ServerLimits()
    max_connections: int = MAX_CONNECTIONS
    # Connections waiting for a request, oldest first (dicts keep insertion order); one per server class.
    waiting: dict["GuardedH11Protocol", None] = {}

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._partial = False
        self._start_waiting()
        # uvicorn arms this only after a response; armed now, a socket that never sends a byte closes too.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
        if len(self.connections) > self.max_connections:
            self._make_room()

    def _make_room(self) -> None:
        """Close the connection that has waited longest for a request, or refuse this one."""
        for other in self.waiting:
            if other is not self and not other.transport.is_closing():
                other._close_waiting()
                return
        self._stop_waiting()
        self.transport.write(raw_error(503, "Service Unavailable", "api/unavailable",
                                       f"connections: all {self.max_connections} are busy; retry shortly"))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is not None:
            self._partial = True
        super().data_received(data)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request's headers are complete: it is served, not timed
            self._stop_waiting()

    def on_response_complete(self) -> None:
        # Waiting starts before uvicorn looks at pipelined bytes, which may start (and stop) it again.
        if not self.transport.is_closing():
            self._start_waiting()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _start_waiting(self) -> None:
        self._stop_waiting()
        self._partial = False
        self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._close_waiting)
        self.waiting[self] = None

    def _stop_waiting(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self.waiting.pop(self, None)

    def _close_waiting(self) -> None:
        """Close a connection waiting for a request; a 408 says so if part of one had arrived."""
        self._stop_waiting()
        if self.transport.is_closing():
            return
        if self._partial:
            self.transport.write(raw_error(408, "Request Timeout", "api/request_timeout",
                                           f"headers: not complete within {self.limits.header_timeout_s:g} s"))
        self.transport.close()


def guarded_protocol(limits: ServerLimits) -> type[GuardedH11Protocol]:
    """A protocol class for one server: its own limits and its own table of waiting connections."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,),
                {"limits": limits, "max_connections": limits.effective_max_connections(), "waiting": {}})
