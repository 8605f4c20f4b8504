"""A small synchronous client of CometBFT's JSON-RPC (over HTTP on the loopback)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx

MAX_BATCH_CALLS = 1000  # below the rpc.max_request_batch_size that setup.py configures


class RpcError(RuntimeError):
    """CometBFT answered a call with a JSON-RPC error."""


@dataclass(frozen=True)
class ChainStatus:
    """The parts of /status a manager needs."""

    node_id: str
    moniker: str
    height: int
    app_hash: str  # upper-case hex, as CometBFT prints it
    catching_up: bool
    voting_power: int


class RpcClient:
    """Calls one node's RPC; every method raises httpx.HTTPError if the node does not answer."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url
        self._client = httpx.Client(base_url=url, timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "RpcClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, method: str, **params: Any) -> dict:
        """One JSON-RPC call; its result."""
        reply = self._client.post("/", json={"jsonrpc": "2.0", "id": 0, "method": method, "params": params})
        reply.raise_for_status()
        return _result(reply.json(), method)

    def batch(self, method: str, params: list[dict]) -> list[dict | RpcError]:
        """Many calls of one method in JSON-RPC batches: each call's result, or its RpcError, in order."""
        results: list[dict | RpcError] = []
        for start in range(0, len(params), MAX_BATCH_CALLS):
            chunk = params[start:start + MAX_BATCH_CALLS]
            body = [{"jsonrpc": "2.0", "id": i, "method": method, "params": p} for i, p in enumerate(chunk)]
            reply = self._client.post("/", json=body)
            reply.raise_for_status()
            answers = reply.json()
            if isinstance(answers, dict):  # CometBFT answers a batch of one with a bare object
                answers = [answers]
            for answer in sorted(answers, key=lambda a: a.get("id", 0)):
                try:
                    results.append(_result(answer, method))
                except RpcError as exc:
                    results.append(exc)
        return results

    def status(self) -> ChainStatus:
        result = self.call("status")
        sync, node = result["sync_info"], result["node_info"]
        return ChainStatus(
            node_id=node["id"],
            moniker=node["moniker"],
            height=int(sync["latest_block_height"]),
            app_hash=sync["latest_app_hash"],
            catching_up=bool(sync["catching_up"]),
            voting_power=int(result["validator_info"]["voting_power"]),
        )

    def n_peers(self) -> int:
        return int(self.call("net_info")["n_peers"])

    def broadcast_tx_sync(self, tx: bytes) -> dict:
        """Submit a tx and wait for its CheckTx: {'code', 'codespace', 'log', 'hash', ...}."""
        return self.call("broadcast_tx_sync", tx=base64.b64encode(tx).decode())

    def broadcast_txs_sync_results(self, txs: list[bytes]) -> list[dict | RpcError]:
        """Submit many txs in JSON-RPC batches; each answer once its CheckTx ran (or its RpcError)."""
        return self.batch("broadcast_tx_sync", [{"tx": base64.b64encode(tx).decode()} for tx in txs])

    def header_app_hash(self, height: int) -> str:
        """The app hash in the header at height: the state after block height - 1."""
        return self.call("header", height=str(height))["header"]["app_hash"]


def _result(answer: dict, method: str) -> dict:
    if "error" in answer:
        error = answer["error"]
        raise RpcError(f"{method}: {error.get('message', '')} {error.get('data', '')}".strip())
    return answer["result"]
