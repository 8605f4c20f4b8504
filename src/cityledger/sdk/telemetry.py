"""Telemetry for programs: the transaction that anchors a gateway interval's records root.

    anchor = lambda root, count, interval: client.submit(
        anchor_records_root(chain_id, gateway_key, client.get_nonce(address), data_set, root, count, interval),
        wait=True)
    Gateway(..., anchor=anchor, ...)

The gateway (offchain/telemetry/gateway.py) hands its anchor callable one root per interval; the
ledger keeps it with consent's AnchorRecordsRoot, sent by the data set's owner or by the signer that
controls its accredited gateway, once per interval and in increasing order.
"""

from __future__ import annotations

from ..core.keys import Signer
from ..offchain.telemetry.gateway import make_anchor_msg
from .txs import KeyOrKeys, sign


def anchor_records_root(chain_id: str, keys: KeyOrKeys, nonce: int, data_set: str, root: bytes, count: int,
                        interval: int, *, expiry_height: int = 0, signer: Signer | None = None) -> bytes:
    """Anchor `root` over `count` records of the data set's `interval` (consent's AnchorRecordsRoot)."""
    if not isinstance(root, bytes) or len(root) != 32:
        raise ValueError("root: expected 32 bytes")
    return sign(chain_id, keys, nonce, [make_anchor_msg(data_set, root, count, interval)],
                expiry_height=expiry_height, signer=signer)
