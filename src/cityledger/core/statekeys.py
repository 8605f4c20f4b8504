"""Building state keys: one byte per module, one byte per collection, length-prefixed parts.

    key = module_prefix (1 byte) + collection (1 byte) + for each part: len (1 byte) + part

Length prefixes make keys of different collections and parts unambiguous, so no key is a prefix
trick away from another. Every module builds its keys in its own keys.py with these helpers.
"""

from __future__ import annotations

MAX_KEY_PART = 255

# Module prefixes: fixed forever, listed in one place.
PREFIX_AUTH = 0x00
PREFIX_BANK = 0x01
PREFIX_GOVERNANCE = 0x02
PREFIX_IDENTITY = 0x03
PREFIX_DEVICES = 0x04
PREFIX_PAYMENTS = 0x05
PREFIX_MOBILITY = 0x06
PREFIX_BATTERIES = 0x07
PREFIX_CONSENT = 0x08
PREFIX_COMPUTE = 0x09


def make_key(module: int, collection: int, *parts: bytes) -> bytes:
    """A state key from a module prefix, a collection byte and variable parts."""
    out = bytearray((module, collection))
    for part in parts:
        if len(part) > MAX_KEY_PART:
            raise ValueError(f"key part: expected at most {MAX_KEY_PART} bytes, got {len(part)}")
        out.append(len(part))
        out += part
    return bytes(out)


def collection_prefix(module: int, collection: int) -> bytes:
    """The prefix shared by every key of one collection."""
    return bytes((module, collection))


def split_key(key: bytes) -> tuple[int, int, list[bytes]]:
    """Inverse of make_key: (module, collection, parts)."""
    if len(key) < 2:
        raise ValueError(f"key: expected at least 2 bytes, got {len(key)}")
    parts: list[bytes] = []
    index = 2
    while index < len(key):
        size = key[index]
        parts.append(key[index + 1: index + 1 + size])
        index += 1 + size
    return key[0], key[1], parts
