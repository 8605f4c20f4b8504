"""State layers: committed store <- block overlay <- per-tx journal.

A transaction runs against its own journal; on success the journal's writes fold into the block
overlay, on failure they are dropped, so a failed transaction leaves no partial writes. At the end
of a block the overlay's writes, sorted by key, are the block's change set for the state tree.
"""

from __future__ import annotations

from typing import Iterator, Protocol

_DELETED = None
_MISSING = object()


class StateReader(Protocol):
    """Anything that can read a state key."""

    def get(self, key: bytes) -> bytes | None: ...


class PrefixReader(StateReader, Protocol):
    """A reader that can also list keys under a prefix (committed stores)."""

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]: ...


class Overlay:
    """Writes buffered over a parent reader; `None` in writes marks a deletion."""

    __slots__ = ("parent", "writes")

    def __init__(self, parent: StateReader) -> None:
        self.parent = parent
        self.writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        """The value of key as seen through this overlay."""
        value = self.writes.get(key, _MISSING)
        if value is _MISSING:
            return self.parent.get(key)
        return value

    def set(self, key: bytes, value: bytes) -> None:
        """Write a value."""
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        """Delete a key."""
        self.writes[key] = _DELETED

    def has(self, key: bytes) -> bool:
        """True if key holds a value."""
        return self.get(key) is not None

    def fold_into(self, target: "Overlay") -> None:
        """Apply these writes to target (the parent layer)."""
        target.writes.update(self.writes)

    def sorted_writes(self) -> list[tuple[bytes, bytes | None]]:
        """The change set in key order (deterministic)."""
        return sorted(self.writes.items())

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Keys under prefix in key order, merging writes with the parent's (if it can list)."""
        merged: dict[bytes, bytes | None] = {}
        lister = getattr(self.parent, "iter_prefix", None)
        if lister is not None:
            merged.update(lister(prefix))
        merged.update((k, v) for k, v in self.writes.items() if k.startswith(prefix))
        for key in sorted(merged):
            value = merged[key]
            if value is not None:
                yield key, value


class DictState:
    """An in-memory committed state for tests and genesis dry runs."""

    def __init__(self, items: dict[bytes, bytes] | None = None) -> None:
        self.items = dict(items or {})

    def get(self, key: bytes) -> bytes | None:
        return self.items.get(key)

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        for key in sorted(self.items):
            if key.startswith(prefix):
                yield key, self.items[key]

    def apply(self, writes: list[tuple[bytes, bytes | None]]) -> None:
        for key, value in writes:
            if value is None:
                self.items.pop(key, None)
            else:
                self.items[key] = value
