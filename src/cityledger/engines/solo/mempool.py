"""A bounded mempool: dedup by id, FIFO (so each sender's txs stay in nonce order), per-sender quota.

The ledger is feeless, so spam is held off by bounds rather than by fees: a total count and byte
limit, and a quota per sender so no one account can fill the pool. Txs that stay longer than
`ttl_blocks` blocks are evicted.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ...core.errors import ERR_DUPLICATE, ERR_MEMPOOL_FULL, ERR_QUOTA


@dataclass
class MempoolConfig:
    max_txs: int = 100_000
    max_bytes: int = 256 * 1024 * 1024
    sender_quota: int = 20_000
    ttl_blocks: int = 100


@dataclass
class _Entry:
    raw: bytes
    sender: bytes
    added_height: int


class Mempool:
    """Pending txs in arrival order."""

    def __init__(self, config: MempoolConfig | None = None) -> None:
        self.config = config or MempoolConfig()
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._per_sender: dict[bytes, int] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def contains(self, tx_id: bytes) -> bool:
        """True if the tx is pending."""
        return tx_id in self._entries

    def check_room(self, tx_id: bytes, size: int, sender: bytes | None) -> None:
        """Raise TxError if the tx is a duplicate or does not fit."""
        if tx_id in self._entries:
            raise ERR_DUPLICATE(f"tx: {tx_id.hex()} is already in the mempool", "tx")
        if len(self._entries) >= self.config.max_txs or self._bytes + size > self.config.max_bytes:
            raise ERR_MEMPOOL_FULL(f"mempool: full ({len(self._entries)} txs, {self._bytes} bytes); retry later",
                                   "tx")
        if sender is not None and self._per_sender.get(sender, 0) >= self.config.sender_quota:
            raise ERR_QUOTA(f"sender: {sender.hex()} already has {self.config.sender_quota} pending txs "
                            "(the per-account quota)", "sender")

    def add(self, tx_id: bytes, raw: bytes, sender: bytes, height: int) -> None:
        """Admit a checked tx."""
        self._entries[tx_id] = _Entry(raw, sender, height)
        self._per_sender[sender] = self._per_sender.get(sender, 0) + 1
        self._bytes += len(raw)

    def remove(self, tx_id: bytes) -> None:
        """Drop a tx (committed, evicted or failed recheck)."""
        entry = self._entries.pop(tx_id, None)
        if entry is None:
            return
        self._bytes -= len(entry.raw)
        left = self._per_sender[entry.sender] - 1
        if left:
            self._per_sender[entry.sender] = left
        else:
            del self._per_sender[entry.sender]

    def reap(self, max_txs: int, max_bytes: int) -> list[tuple[bytes, bytes]]:
        """The oldest pending (tx_id, raw) pairs within the block limits."""
        out, total = [], 0
        for tx_id, entry in self._entries.items():
            if len(out) >= max_txs or total + len(entry.raw) > max_bytes:
                break
            out.append((tx_id, entry.raw))
            total += len(entry.raw)
        return out

    def older_than(self, height: int) -> list[bytes]:
        """Ids of txs added below `height`: a prefix, since entries are kept in arrival order."""
        out = []
        for tx_id, entry in self._entries.items():
            if entry.added_height >= height:
                break
            out.append(tx_id)
        return out

    def items(self) -> list[tuple[bytes, bytes, int]]:
        """All pending (tx_id, raw, added_height), oldest first."""
        return [(tx_id, e.raw, e.added_height) for tx_id, e in self._entries.items()]
