"""Helpers shared by the API, SDK, CLI and integration tests: nodes in-process, in a thread, or as a process.

(No tests here; the name keeps the file with the API tests it serves.)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from cityledger.api import ServerLimits, create_app, server_config
from cityledger.core.keys import PrivateKey
from cityledger.modules.bank import get_balance
from cityledger.node.home import init_home, load_config, load_key
from cityledger.node.runner import Node

SRC = Path(__file__).resolve().parent.parent / "src"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class TestNode:
    """A solo node on a fresh home, with two funded consortium keys."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    home: Path
    node: Node
    alice: PrivateKey
    bob: PrivateKey

    @property
    def chain_id(self) -> str:
        return self.node.config.chain_id

    def balance(self, key_or_address) -> int:
        address = key_or_address.address() if isinstance(key_or_address, PrivateKey) else key_or_address
        return get_balance(self.node.store, address)

    def app_hash(self) -> bytes:
        return self.node.store.height_info(self.node.store.last_height()).app_hash


def make_node(tmp_path: Path, block_interval_ms: int = 20, port: int = 8080) -> TestNode:
    """Initialise a home under tmp_path and open its node (block loop not started)."""
    home = tmp_path / "home"
    init_home(home, port=port)
    config = load_config(home)
    config.solo.block_interval_ms = block_interval_ms
    node = Node(config)
    return TestNode(home, node, load_key(home / "keys" / "city-government.json"),
                    load_key(home / "keys" / "car-maker.json"))


class LiveServer:
    """The API of a node under uvicorn in a background thread, with the node's block loop running."""

    def __init__(self, node: Node, limits: ServerLimits = ServerLimits()) -> None:
        self.node = node
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The same settings as api.serve, connection bounds included.
        self.server = uvicorn.Server(server_config(create_app(node), "127.0.0.1", self.port, "warning", limits))
        self.thread = threading.Thread(target=self.server.run, name="test-uvicorn", daemon=True)

    def __enter__(self) -> "LiveServer":
        self.node.start()
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.node.stop()


class NodeProcess:
    """`python -m cityledger.cli.main up` as a subprocess on a free port."""

    def __init__(self, home: Path, port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        self.home = home
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.log = home.parent / f"node-{self.port}.log"

    def start(self, timeout_s: float = 30) -> "NodeProcess":
        env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        command = [sys.executable, "-m", "cityledger.cli.main", "up", "--home", str(self.home),
                   "--port", str(self.port), "--log-level", "warning", *self.extra]
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"node not healthy after {timeout_s} s: {self.log.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20) -> int:
        """Signal the node and wait; its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def __enter__(self) -> "NodeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
