"""Nodes for replaying module vectors through the REST API (no tests here): the SDK and CLI tests.

A solo node starts from a vector's genesis; the pre-state's transactions are signed with
cityledger.sdk and submitted one block at a time, so heights match the vectors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cityledger.node.home import init_home, load_config
from cityledger.node.runner import Node
from cityledger.sdk import Client, TxRejected, sign

from module_vectors import GENESIS_TIME_NS, MODULE_NAMES, Step, VectorFile, all_cases, error_kind, vectors_of
from test_api_helpers import LiveServer

BLOCK_INTERVAL_MS = 5  # small: each step waits for a block of its own


def open_node(tmp_path: Path, vectors: VectorFile) -> Node:
    """A solo node on a fresh home whose genesis is the vectors' genesis."""
    home = tmp_path / "home"
    init_home(home, chain_id=vectors.chain_id, issuers=False)
    genesis = {"chain_id": vectors.chain_id, "initial_height": 1, "genesis_time_ns": GENESIS_TIME_NS,
               "app_state": vectors.genesis}
    (home / "genesis.json").write_text(json.dumps(genesis))
    config = load_config(home)
    config.solo.block_interval_ms = BLOCK_INTERVAL_MS
    return Node(config)


def submit(client: Client, chain_id: str, step: Step) -> tuple[bool, dict | None, list, int | None]:
    """(ok, error kind, events, height) of one step signed with the SDK, submitted and waited for."""
    tx = sign(chain_id, step.keys, client.get_nonce(step.signer_address()), step.messages, signer=step.signer)
    try:
        submitted = client.submit(tx, wait=True, timeout_s=30)
    except TxRejected as rejected:
        return False, error_kind(rejected.codespace, rejected.abci_code), [], None
    result = submitted.result
    assert result is not None, f"tx {submitted.tx_id} not committed"
    if result.code:
        return False, error_kind(result.codespace, result.code), [], submitted.height
    events = [{"type": e.type, "attributes": {a.key: a.value for a in e.attributes}} for e in result.events]
    return True, None, events, submitted.height


class Served:
    """A node at a case's pre-state, its API served, and an SDK client on it."""

    def __init__(self, tmp_path: Path, vectors: VectorFile, case: dict[str, Any]) -> None:
        self.vectors = vectors
        self.home = tmp_path / "home"
        self.server = LiveServer(open_node(tmp_path, vectors)).__enter__()
        self.url = self.server.url
        self.client = Client(self.url)
        for index, step in enumerate(vectors.pre(case)):
            ok, error, _, height = submit(self.client, vectors.chain_id, step)
            assert ok and height == index + 1, (index, error, height)

    def height(self) -> int:
        return self.client.status().height

    def check_post(self, case: dict[str, Any], step: Step) -> None:
        """The case's queried values and the sender's account, read back with the SDK."""
        for query in case["post"]["queries"]:
            module, name = query["path"].split("/")
            assert self.client.query(module, name, **query["args"]) == query["result"], query["path"]
        account = self.client.get_account(step.signer_address())
        expected = case["post"]["account"]
        assert (account.address, account.balance, account.nonce) == (
            expected["address"], expected["balance"], expected["nonce"])

    def close(self) -> None:
        self.client.close()
        self.server.__exit__(None, None, None)


class NodePool:
    """Nodes for cases: a success gets its own; the refusals of one pre-state share one, since a
    refused tx leaves the state as it was (checked: if the height moved, the node is not reused)."""

    def __init__(self) -> None:
        self.shared: tuple[tuple[str, int], Served] | None = None

    def get(self, tmp_path: Path, module: str, case: dict[str, Any]) -> Served:
        key = (module, case["pre"]["blocks"])
        if "ok" in case["expect"]:
            return Served(tmp_path, vectors_of(module), case)
        if self.shared is None or self.shared[0] != key:
            self.close()
            self.shared = (key, Served(tmp_path, vectors_of(module), case))
        return self.shared[1]

    def done(self, served: Served, height_before: int) -> None:
        """Close a node that may not serve another case."""
        is_shared = self.shared is not None and self.shared[1] is served
        if not is_shared:
            served.close()
        elif served.height() != height_before:
            self.close()

    def close(self) -> None:
        if self.shared is not None:
            self.shared[1].close()
            self.shared = None


def quick_cases(select=None) -> list:
    """pytest params of the cases `select(module, case)` keeps: per module the first success and the
    first refusal run always, the others are marked slow (each starts a node)."""
    params, seen = [], set()
    for module, name in all_cases():
        case = next(c for c in vectors_of(module).cases if c["name"] == name)
        if select is not None and not select(module, case):
            continue
        kind = (module, "error" in case["expect"])
        marks = () if kind not in seen else (pytest.mark.slow,)
        seen.add(kind)
        params.append(pytest.param(module, name, id=f"{module}/{name}", marks=marks))
    return params


__all__ = ["MODULE_NAMES", "NodePool", "Served", "open_node", "quick_cases", "submit"]
