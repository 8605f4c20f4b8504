"""The HTTP server's connection bounds against slowloris (issue 11, defect 5), on a live uvicorn server.

Each test runs the server with small bounds (api.ServerLimits) so that what the defaults do in
seconds happens here in about one; the assertions are about what is closed and what is served, and
the socket timeouts only stop a failing test from hanging.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from cityledger.api import ServerLimits
from cityledger.api import codec
from cityledger.api.connections import MAX_HEADER_BYTES, RESERVED_FDS

from test_api_helpers import LiveServer, make_node

pytestmark = pytest.mark.slow

# Far above every bound below: a socket still open after this was never going to be closed.
NEVER_S = 15.0


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(NEVER_S)
    return sock


def read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response, head and body (by its Content-Length), however the bytes arrive: a
    busy machine hands the head and the body over in separate reads."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; raise TimeoutError if it never does."""
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def dribble(sock: socket.socket, stop: threading.Event) -> None:
    """Send a request's headers a few bytes at a time, never finishing them (slowloris)."""
    line = b"GET /health HTTP/1.1\r\nHost: node\r\n" + b"X-Slow: 1\r\n" * 1000
    for i in range(len(line)):
        if stop.wait(0.1):
            return
        try:
            sock.send(line[i:i + 1])
        except OSError:
            return


@pytest.fixture
def node(tmp_path):
    tn = make_node(tmp_path)
    yield tn.node
    tn.node.store.close()


def test_idle_and_dribbling_sockets_are_closed_while_requests_are_served(node):
    limits = ServerLimits(header_timeout_s=1.0, idle_timeout_s=1, max_connections=200)
    with LiveServer(node, limits) as server:
        idle = [connect(server.port) for _ in range(100)]
        slow = [connect(server.port) for _ in range(10)]
        stop = threading.Event()
        threads = [threading.Thread(target=dribble, args=(sock, stop), daemon=True) for sock in slow]
        for thread in threads:
            thread.start()
        try:
            with httpx.Client(base_url=server.url) as client:
                assert client.get("/health").status_code == 200
            assert all(read_until_closed(sock) == b"" for sock in idle)  # closed silently: nothing was asked
            for sock in slow:
                answer = read_until_closed(sock)
                assert answer.startswith(b"HTTP/1.1 408 ") and b"api/request_timeout" in answer
            assert httpx.get(server.url + "/health").status_code == 200
        finally:
            stop.set()
            for sock in idle + slow:
                sock.close()


def test_a_keep_alive_connection_closes_after_the_idle_time(node):
    limits = ServerLimits(header_timeout_s=NEVER_S * 2, idle_timeout_s=1)
    with LiveServer(node, limits) as server:
        sock = connect(server.port)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: node\r\n\r\n")
        answer = read_until_closed(sock)  # the response, then the close once the connection idles
        assert answer.startswith(b"HTTP/1.1 200 ") and b'"status":"ok"' in answer


def test_connections_past_the_cap_close_the_longest_waiting_and_requests_are_served(node):
    limits = ServerLimits(header_timeout_s=NEVER_S * 4, idle_timeout_s=NEVER_S * 4, max_connections=50)
    with LiveServer(node, limits) as server:
        older = [connect(server.port) for _ in range(30)]
        time.sleep(0.2)  # ordering only: the server has accepted the older ones first
        newer = [connect(server.port) for _ in range(50)]
        try:
            # 80 sockets for 50 places: the 30 that waited longest are closed, the 50 newest kept.
            assert all(read_until_closed(sock) == b"" for sock in older)
            with httpx.Client(base_url=server.url) as client:
                assert client.get("/health").status_code == 200  # one more place, made for it
            newer[-1].sendall(b"GET /health HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")
            assert read_until_closed(newer[-1]).startswith(b"HTTP/1.1 200 ")
        finally:
            for sock in older + newer:
                sock.close()


def test_a_connection_past_the_cap_is_refused_when_all_are_busy(node, monkeypatch):
    monkeypatch.setattr(codec, "BODY_READ_TIMEOUT_S", NEVER_S * 2)
    limits = ServerLimits(max_connections=3)
    with LiveServer(node, limits) as server:
        busy = [connect(server.port) for _ in range(3)]
        try:
            for sock in busy:  # a request whose body never comes keeps its connection busy
                sock.sendall(b"POST /txs HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 100\r\n\r\n{")
            time.sleep(0.2)  # ordering only: the three requests are in before the fourth connects
            refused = connect(server.port)
            answer = read_until_closed(refused)
            assert answer.startswith(b"HTTP/1.1 503 ") and b"api/unavailable" in answer
        finally:
            for sock in busy:
                sock.close()


def test_a_body_sent_too_slowly_is_a_408(node, monkeypatch):
    monkeypatch.setattr(codec, "BODY_READ_TIMEOUT_S", 1.0)
    with LiveServer(node) as server:
        sock = connect(server.port)
        sock.sendall(b"POST /txs HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{")
        answer = read_response(sock)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 408 ") and b"api/request_timeout" in answer


def test_oversized_headers_are_refused_whole_or_arriving(node):
    big = b"GET /health HTTP/1.1\r\nHost: node\r\nX-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\n"
    with LiveServer(node) as server:
        whole = connect(server.port)
        whole.sendall(big + b"Connection: close\r\n\r\n")
        answer = read_until_closed(whole)
        assert answer.startswith(b"HTTP/1.1 431 ") and b"api/headers_too_large" in answer
        arriving = connect(server.port)
        arriving.sendall(big + b"X-More: ")  # not finished, and already past the limit
        assert read_until_closed(arriving).startswith(b"HTTP/1.1 400 ")


def test_max_connections_leaves_room_for_the_node_under_a_low_fd_limit(monkeypatch):
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda which: (256, 4096))
    assert ServerLimits(max_connections=1024).effective_max_connections() == 256 - RESERVED_FDS
    assert ServerLimits(max_connections=100).effective_max_connections() == 100


def test_a_500_keeps_the_connection_and_the_sdk_reads_it(node, monkeypatch):
    from cityledger.sdk import ApiError, Client

    with LiveServer(node) as server:
        service = server.server.config.app.state.service

        def broken():
            raise RuntimeError("secret path /home/node/ledger.db")

        monkeypatch.setattr(service, "status", broken)
        sock = connect(server.port)
        try:
            # Two requests on one connection: the 500 must not close it (uvicorn did, on a re-raise).
            for path in (b"/status", b"/health"):
                sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: node\r\n\r\n")
                answer = read_response(sock)
                assert answer.startswith(b"HTTP/1.1 500 " if path == b"/status" else b"HTTP/1.1 200 "), answer
                assert b"secret" not in answer
        finally:
            sock.close()
        with Client(server.url) as client:
            with pytest.raises(ApiError) as caught:
                client.status()
            assert caught.value.status == 500 and caught.value.code == "api/internal"
            assert client.health().status == "ok"


def test_idle_sockets_past_the_fd_limit_do_not_stop_a_node_process(tmp_path):
    """The issue's reproducer: a node with 256 file descriptors, 300 idle sockets, then a request."""
    import os
    import subprocess
    import sys

    from cityledger.node.home import init_home
    from test_api_helpers import SRC, free_port

    home, port = tmp_path / "home", free_port()
    init_home(home, port=port)
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); "
            "from cityledger.cli.main import app; sys.argv = ['cityledger'] + sys.argv[1:]; app()")
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log = (tmp_path / "node.log").open("w")
    proc = subprocess.Popen([sys.executable, "-c", code, "up", "--home", str(home), "--port", str(port),
                             "--log-level", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    sockets = []
    try:
        deadline = time.monotonic() + 60
        while True:  # wait for the node to serve, or fail if it died
            assert proc.poll() is None, (tmp_path / "node.log").read_text()[-2000:]
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "node did not start"
                time.sleep(0.1)
        sockets = [connect(port) for _ in range(300)]
        with httpx.Client(base_url=url, timeout=NEVER_S) as client:
            for _ in range(5):
                assert client.get("/health").status_code == 200
    finally:
        for sock in sockets:
            sock.close()
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
