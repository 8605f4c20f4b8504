"""Checking state proofs: a value (or its absence) under an app hash, with nothing trusted but the hash."""

from __future__ import annotations

from typing import Mapping

import msgspec

from ..core.tree import Proof, verify_proof
from ..wire.views import ProofView


def parse_proof(proof: Proof | ProofView | bytes | str | Mapping) -> Proof:
    """A Proof from its object, its canonical bytes (or their hex), its JSON form or view; raise ValueError."""
    if isinstance(proof, Proof):
        return proof
    if isinstance(proof, ProofView):
        proof = msgspec.structs.asdict(proof)
    if isinstance(proof, str):
        try:
            proof = bytes.fromhex(proof)
        except ValueError:
            raise ValueError("proof: expected hex of the canonical proof bytes") from None
    if isinstance(proof, (bytes, bytearray)):
        return Proof.from_bytes(bytes(proof))
    if isinstance(proof, Mapping):
        return Proof.from_dict(proof)
    raise ValueError(f"proof: expected a Proof, ProofView, bytes, hex or dict, got {type(proof).__name__}")


def _hash_bytes(app_hash: bytes | str) -> bytes:
    if isinstance(app_hash, str):
        try:
            return bytes.fromhex(app_hash)
        except ValueError:
            raise ValueError(f"app_hash: expected 64 hex digits, got {app_hash!r}") from None
    return bytes(app_hash)


def verify_state_proof(key: bytes, value: bytes | None, proof: Proof | ProofView | bytes | str | Mapping,
                       app_hash: bytes | str) -> bool:
    """True if `proof` shows that `key` holds `value` (None: that key is absent) under `app_hash`.

    A malformed proof is simply one that does not verify; a malformed key or app hash is the
    caller's mistake and raises ValueError.
    """
    root = _hash_bytes(app_hash)
    if len(root) != 32:
        raise ValueError(f"app_hash: expected 32 bytes, got {len(root)}")
    if not isinstance(key, (bytes, bytearray)) or not key:
        raise ValueError("key: expected non-empty bytes")
    try:
        parsed = parse_proof(proof)
    except ValueError:
        return False
    return verify_proof(root, bytes(key), None if value is None else bytes(value), parsed)
