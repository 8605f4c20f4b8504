"""serve: the node's block loop and the API under uvicorn, with a clean stop on SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading

import uvicorn

from .app import create_app
from .connections import MAX_HEADER_BYTES, ServerLimits, guarded_protocol
from .protocols import NodeLike

log = logging.getLogger("cityledger.api")

GRACEFUL_SHUTDOWN_S = 5


def server_config(app, host: str, port: int, log_level: str = "info",
                  limits: ServerLimits = ServerLimits()) -> uvicorn.Config:
    """uvicorn's settings for the API, with the connection bounds of connections.py: every server uses this."""
    # limit_concurrency stays off: the protocol caps connections itself (each runs one request at a
    # time), refusing at accept time instead of keeping the socket to answer 503 later.
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                          timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, lifespan="on",
                          http=guarded_protocol(limits), timeout_keep_alive=limits.idle_timeout_s,
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES, limit_concurrency=None)


def serve(node: NodeLike, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info",
          limits: ServerLimits = ServerLimits()) -> None:
    """Run the node and its API until SIGINT or SIGTERM; the node is stopped before this returns."""
    server = uvicorn.Server(server_config(create_app(node), host, port, log_level, limits))
    # uvicorn re-raises the signal that stopped it once it has shut down; catching it here means
    # that raise lands in our handler, so the node below is stopped and the process exits 0.
    caught: list[int] = []

    def on_signal(number: int, frame) -> None:
        caught.append(number)
        server.should_exit = True  # a signal before uvicorn installed its own handlers

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    node.start()
    try:
        server.run()
    finally:
        node.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            log.info("stopped by signal %s", signal.Signals(caught[0]).name)
