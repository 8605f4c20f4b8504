"""State-sync snapshots (format 1): the whole state at a height, in hashed chunks.

A snapshot is taken at commit every `interval` heights from the flat state table (which equals the
state tree at that height). Chunk i is canonical msgpack `[[key, value]…]` in key order, about
`CHUNK_BYTES` each; the snapshot's metadata is `encode([sha256(chunk_0), …])` and its hash is
SHA-256 of the metadata. A restoring node checks every chunk against the metadata as it arrives,
and at the end checks the rebuilt tree's root against the app hash that CometBFT's light client
verified for that height — so a lying peer can waste time, never plant state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.encoding import decoder, encode
from ..core.hashing import sha256
from ..core.storage import Store
from . import abc

FORMAT = 1
CHUNK_BYTES = 1 << 20
MAX_CHUNKS = 100_000
KEEP_SNAPSHOTS = 5  # a joining node picks one and fetches it over seconds: keep several

_CHUNK = decoder(list[tuple[bytes, bytes]])
_META = decoder(list[bytes])


def take_snapshot(store: Store, height: int) -> abc.Snapshot:
    """Write a snapshot of the current committed state (which is at `height`) into the store."""
    chunks, current, size = [], [], 0
    for key, value in store.iter_prefix(b""):
        current.append((key, value))
        size += len(key) + len(value) + 8
        if size >= CHUNK_BYTES:
            chunks.append(encode(current))
            current, size = [], 0
    if current or not chunks:
        chunks.append(encode(current))
    metadata = encode([sha256(chunk) for chunk in chunks])
    snapshot = abc.Snapshot(height, FORMAT, len(chunks), sha256(metadata), metadata)
    store.save_snapshot(snapshot, chunks, keep=KEEP_SNAPSHOTS)
    return snapshot


@dataclass
class Restore:
    """A snapshot being applied, chunk by chunk."""

    snapshot: abc.Snapshot
    app_hash: bytes
    chunk_hashes: list[bytes]
    items: dict[bytes, bytes] = field(default_factory=dict)
    next_index: int = 0


def offer(store: Store, snapshot: abc.Snapshot, app_hash: bytes) -> tuple[int, Restore | None]:
    """Decide on an offered snapshot: accept only format 1 with sane metadata, into an empty node."""
    if snapshot.format != FORMAT:
        return abc.OfferSnapshotResult.REJECT_FORMAT, None
    if store.last_height() > 0:
        return abc.OfferSnapshotResult.REJECT, None
    try:
        hashes = _META.decode(snapshot.metadata)
    except ValueError:
        return abc.OfferSnapshotResult.REJECT, None
    if sha256(snapshot.metadata) != snapshot.hash or len(hashes) != snapshot.chunks or not 0 < len(hashes) <= MAX_CHUNKS:
        return abc.OfferSnapshotResult.REJECT, None
    return abc.OfferSnapshotResult.ACCEPT, Restore(snapshot, app_hash, hashes)


def apply_chunk(store: Store, restore: Restore, index: int, chunk: bytes) -> int:
    """Check a chunk against the metadata and keep its items; on the last one, rebuild and verify."""
    if index != restore.next_index or sha256(chunk) != restore.chunk_hashes[index]:
        return abc.ApplyChunkResult.RETRY
    try:
        restore.items.update(_CHUNK.decode(chunk))
    except ValueError:
        return abc.ApplyChunkResult.RETRY
    restore.next_index += 1
    if restore.next_index < len(restore.chunk_hashes):
        return abc.ApplyChunkResult.ACCEPT
    height = restore.snapshot.height
    tree = store.tree.apply(None, height, restore.items)
    if tree.root_hash != restore.app_hash:
        return abc.ApplyChunkResult.REJECT_SNAPSHOT
    store.restore_state(height, sorted(restore.items.items()), tree)
    return abc.ApplyChunkResult.ACCEPT
