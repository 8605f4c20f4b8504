"""Telemetry for programs: the transactions that anchor a gateway interval's records root.

One root per interval over every record the gateway received, whatever the fleet size, is consent's
AnchorGatewayRoot: `gateway_anchor` makes the gateway's anchor callable from it.

    anchor = gateway_anchor(client, chain_id, gateway_key, gateway_did)
    Gateway(..., anchor=anchor, ...)

A root per data set is consent's AnchorRecordsRoot (`anchor_records_root`), sent by the data set's
owner or by the signer that controls its accredited gateway. Both are taken once per interval and in
increasing order.
"""

from __future__ import annotations

from typing import Any, Callable

from ..core.keys import PrivateKey, Signer, compute_address
from ..core.types import HASH_LEN
from ..modules.consent.messages import AnchorGatewayRoot
from ..offchain.telemetry.gateway import make_anchor_msg
from .client import DEFAULT_TIMEOUT_S
from .errors import CityLedgerError
from .txs import KeyOrKeys, sign


def _check_root(root: bytes) -> None:
    if not isinstance(root, bytes) or len(root) != HASH_LEN:
        raise ValueError(f"root: expected {HASH_LEN} bytes")


def anchor_records_root(chain_id: str, keys: KeyOrKeys, nonce: int, data_set: str, root: bytes, count: int,
                        interval: int, *, expiry_height: int = 0, signer: Signer | None = None) -> bytes:
    """Anchor `root` over `count` records of the data set's `interval` (consent's AnchorRecordsRoot)."""
    _check_root(root)
    return sign(chain_id, keys, nonce, [make_anchor_msg(data_set, root, count, interval)],
                expiry_height=expiry_height, signer=signer)


def anchor_gateway_root(chain_id: str, keys: KeyOrKeys, nonce: int, gateway: str, root: bytes, count: int,
                        interval: int, *, expiry_height: int = 0, signer: Signer | None = None) -> bytes:
    """Anchor `root` over `count` records of every device the gateway received in `interval` (AnchorGatewayRoot)."""
    _check_root(root)
    message = AnchorGatewayRoot(gateway=gateway, interval=interval, root=root, count=count)
    return sign(chain_id, keys, nonce, [message], expiry_height=expiry_height, signer=signer)


def _anchored_root(client: Any, gateway: str, interval: int) -> str | None:
    """The hex root the ledger holds for the gateway's interval, or None."""
    page = client.query("consent", "gateway_roots", gateway=gateway, after=str(max(interval - 1, 0)))
    items = page["items"]
    return items[0]["root"] if items and items[0]["interval"] == interval else None


def gateway_anchor(client: Any, chain_id: str, keys: KeyOrKeys, gateway: str, *, signer: Signer | None = None,
                   timeout_s: float = DEFAULT_TIMEOUT_S) -> Callable[[bytes, int, int], None]:
    """The Gateway's `anchor(root, count, interval)`: one AnchorGatewayRoot per interval, committed before
    it returns; the same root already anchored for the interval (a repeat after a crash) counts as done."""
    first = keys if isinstance(keys, PrivateKey) else keys[0]
    address = compute_address(signer) if signer is not None else first.address()

    def anchor(root: bytes, count: int, interval: int) -> None:
        _check_root(root)
        held = _anchored_root(client, gateway, interval)
        if held is not None:
            if held != root.hex():
                raise CityLedgerError(f"interval {interval}: the ledger holds root {held}, not {root.hex()}")
            return
        tx = anchor_gateway_root(chain_id, keys, client.get_nonce(address), gateway, root, count, interval,
                                 signer=signer)
        outcome = client.submit(tx, wait=True, timeout_s=timeout_s)
        if not outcome.check.ok:
            raise CityLedgerError(f"interval {interval}: anchor refused: {outcome.check.log}")
        if outcome.timed_out or outcome.result is None or not outcome.result.ok:
            reason = "not committed in time" if outcome.result is None else outcome.result.log
            raise CityLedgerError(f"interval {interval}: anchor failed: {reason}")

    return anchor
