"""Per-sender admission quotas: the ledger is feeless, so quotas, not fees, hold off spam.

Two bounds, both governed parameters (the payments module declares them and reads a device's own
bound from its owner's spending policy, through the modules' `sender_quota` hook):
- txs per window of blocks, a consensus rule checked with the nonce (a tx over it fails like a
  nonce gap: it changes nothing, and the sender may send it again in the next window);
- txs pending in the mempool at once, an admission rule of check_tx.

    key   = 00 02 14 <address>                       (auth module, collection 0x02)
    value = window end height || first nonce of the window || txs allowed || pending allowed (u64 each)

Counting needs no write per tx: an account's nonce advances with every tx in a block (failed ones
too), so the txs a sender sent in the window are its nonce now less its nonce at the window's first
tx. The record is written once per window per sender and keeps the quota read then, so the hook
(a policy lookup, for a device) runs once per window, not once per tx.

Nor is the record read from the state per tx: each layer txs are checked against (the check state,
a block's overlay) has a WindowCache of the records it holds, filled on a sender's first tx. Only
this module writes these records, and it drops a sender's entry whenever it writes one (into a
tx's journal, which its caller may keep or drop), so an entry always equals what its layer holds;
the app starts a layer's cache with the layer. A check state kept across a commit reads through to
the store for what it did not write itself, so the senders whose records the block wrote leave its
cache then (`forget_written`).
"""

from __future__ import annotations

import struct
from bisect import bisect_left

from ..core.accounts import unpack_account
from ..core.errors import ERR_QUOTA
from ..core.state import Overlay, StateReader
from ..core.statekeys import PREFIX_AUTH, collection_prefix
from ..core.tx import DecodedTx
from ..modules.base import Params, QuotaReader

QUOTAS_PREFIX = collection_prefix(PREFIX_AUTH, 0x02)
_LAYOUT = struct.Struct(">QQQQ")
_MISSING = object()
# Senders whose window record one layer's cache holds; past it the cache starts afresh (a block of
# 10,000 txs has at most 10,000 senders).
MAX_WINDOW_CACHE_ENTRIES = 100_000

WindowRecord = tuple[int, int, int, int]  # window end height, first nonce, txs allowed, pending allowed
WindowCache = dict[bytes, "WindowRecord | None"]  # sender -> its record in one state layer (None: none)


def quota_key(address: bytes) -> bytes:
    """Key of a sender's window record."""
    return QUOTAS_PREFIX + bytes((len(address),)) + address


def _window_record(state: Overlay, cache: WindowCache, sender: bytes) -> WindowRecord | None:
    """A sender's window record in the layer `state` reads through: from the layer's cache, else read once."""
    record = cache.get(sender, _MISSING)
    if record is _MISSING:
        raw = state.get(quota_key(sender))
        record = None if raw is None else _LAYOUT.unpack(raw)
        if len(cache) >= MAX_WINDOW_CACHE_ENTRIES:
            cache.clear()
        cache[sender] = record
    return record


def forget_written(cache: WindowCache, writes: list[tuple[bytes, bytes | None]]) -> None:
    """Drop from `cache` every sender whose window record `writes` (a block's, sorted by key) changes."""
    skip = len(QUOTAS_PREFIX) + 1  # the prefix and the address's length byte
    for index in range(bisect_left(writes, (QUOTAS_PREFIX,)), len(writes)):
        key = writes[index][0]
        if not key.startswith(QUOTAS_PREFIX):
            break
        cache.pop(key[skip:], None)


def check_window_quota(state: Overlay, cache: WindowCache, reader: QuotaReader, params: Params, decoded: DecodedTx,
                       height: int, nonce: int) -> int:
    """Refuse a tx past its sender's quota for the window `height` falls in; return the sender's
    pending bound. `state` is a tx's fresh journal over a layer (or the layer itself) and `cache`
    that layer's; `nonce` is the tx's (already checked) nonce: the sender's txs so far."""
    sender = decoded.sender
    record = _window_record(state, cache, sender)
    if record is not None:
        end, first_nonce, per_window, max_pending = record
        if height < end:
            # Check: the sender has sent fewer txs in this window than its quota.
            if nonce - first_nonce >= per_window:
                raise ERR_QUOTA(f"sender: {per_window} txs already sent in the window of blocks ending at "
                                f"height {end} (the sender's quota per window); send again from height {end}",
                                "sender")
            return max_pending
    quota = reader(state, params, sender, decoded.tx.body.signer)
    cache.pop(sender, None)  # the record changes in the journal; the layer holds it once the caller keeps it
    key = quota_key(sender)
    if quota.window_blocks <= 0:
        if record is not None:
            state.writes[key] = None  # the window quota was turned off: the old record goes
        return quota.max_pending
    end = (height // quota.window_blocks + 1) * quota.window_blocks
    # Check: a zero quota (a device its owner allowed no txs) refuses the window's first tx too.
    if quota.txs_per_window <= 0:
        raise ERR_QUOTA(f"sender: allowed no txs in the window of blocks ending at height {end}", "sender")
    state.writes[key] = _LAYOUT.pack(end, nonce, quota.txs_per_window, quota.max_pending)
    return quota.max_pending


def check_pending_quota(committed: StateReader, account_key: bytes, nonce: int, max_pending: int) -> None:
    """Refuse a new tx of a sender that already has `max_pending` txs admitted and not yet committed.
    `nonce` is the tx's (its sender's next in the check state), `account_key` the sender's record's key."""
    if max_pending <= 0:
        return
    raw = committed.get(account_key)
    pending = nonce - (0 if raw is None else unpack_account(raw)[0])
    # Check: the mempool holds fewer of this sender's txs than its pending quota.
    if pending >= max_pending:
        raise ERR_QUOTA(f"sender: {pending} txs already pending, at most {max_pending} per sender (retry after the "
                        "next block)", "sender")
