"""Identity invariants: every stored DID is well formed and sits under its own identifier."""

from __future__ import annotations

from ...core.encoding import decoder
from ...core.errors import InvariantBroken
from ...core.state import PrefixReader
from .did import is_did, method_specific_id
from .keys import did_key, DIDS_PREFIX
from .messages import KIND_NAMES, DidRecord
from .validation import check_controller, check_keys, check_services

_DID = decoder(DidRecord)


def check_dids(state: PrefixReader) -> None:
    """Raise InvariantBroken if a DID record is malformed or stored under another key."""
    for key, raw in state.iter_prefix(DIDS_PREFIX):
        record = _DID.decode_lenient(raw)
        if not is_did(record.did) or did_key(method_specific_id(record.did)) != key:
            raise InvariantBroken(f"identity: DID record {record.did!r} stored under key {key.hex()}")
        if record.kind not in KIND_NAMES or record.version < 1:
            raise InvariantBroken(f"identity: {record.did} has kind {record.kind}, version {record.version}")
        problem = check_controller(record.controller) or check_keys(record.keys) or check_services(record.services)
        if problem:
            raise InvariantBroken(f"identity: {record.did}: {problem}")
