"""The verifier service: ask for facts, check the answer against the ledger at the pinned height.

A request pins the ledger height it was made at in `non_revoked.to`: the holder proves
non-revocation against the status list in force at that height, and the verifier resolves every
object (schema, credential definition, registry, status list, issuer accreditation) at that same
height. A revocation anchored before the request therefore makes the presentation fail.
"""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict
from typing import Any, Mapping, Sequence

import anoncreds

from ...modules.identity.presentations import verify_presentation
from .ledger import LedgerReader
from .types import RESIDENT_ID, compute_years_before

REQUEST_TYPE = "identity/1.0/presentation-request"
MAX_PENDING_REQUESTS = 100_000
MAX_REQUEST_AGE_BLOCKS = 10_000
PREDICATE_TYPES = (">=", ">", "<=", "<")


class Verifier:
    """Builds presentation requests and verifies presentations; JSON in, JSON out."""

    def __init__(self, ledger: LedgerReader, max_age_blocks: int = MAX_REQUEST_AGE_BLOCKS) -> None:
        self.ledger = ledger
        self.max_age_blocks = max_age_blocks
        self._pending: OrderedDict[str, int] = OrderedDict()  # nonce -> pinned height

    def request(self, name: str, credential_type: str, reveal: Sequence[str] = (),
                predicates: Sequence[tuple[str, str, int]] = (), non_revoked: bool = True) -> dict[str, Any]:
        """A presentation request for attributes of one credential type, pinned to the current height."""
        restrictions = [{"schema_name": credential_type}]
        height = self.ledger.height()
        request: dict[str, Any] = {
            "name": name, "version": "1.0", "nonce": str(secrets.randbits(80)),
            "requested_attributes": {f"attr_{attr}": {"name": attr, "restrictions": restrictions} for attr in reveal},
            "requested_predicates": {},
        }
        for attr, p_type, value in predicates:
            if p_type not in PREDICATE_TYPES:
                raise ValueError(f"predicates: p_type must be one of {PREDICATE_TYPES}, got {p_type!r}")
            request["requested_predicates"][f"pred_{attr}"] = {"name": attr, "p_type": p_type, "p_value": int(value),
                                                               "restrictions": restrictions}
        if non_revoked:
            request["non_revoked"] = {"to": height}
        if len(self._pending) >= MAX_PENDING_REQUESTS:
            self._pending.popitem(last=False)
        self._pending[request["nonce"]] = height
        return request

    def resident_request(self, today: int, reveal: Sequence[str] = ("district",), min_age: int = 18,
                         min_residence_years: int = 1) -> dict[str, Any]:
        """The city's usual check: adult, resident for a while, revealing only `reveal`."""
        predicates = [("birth_date", "<=", compute_years_before(today, min_age)),
                      ("resident_since", "<=", compute_years_before(today, min_residence_years))]
        return self.request("resident-check", RESIDENT_ID, reveal, predicates)

    def verify(self, request: Mapping[str, Any], presentation: str) -> dict[str, Any]:
        """{'verified', 'reason', 'revealed', 'height'}: each nonce verifies once."""
        height = self._pending.pop(str(request.get("nonce")), None)
        if height is None:
            return {"verified": False, "reason": "nonce: not a pending request of this verifier (or already used)",
                    "revealed": {}, "height": None}
        if self.ledger.height() - height > self.max_age_blocks:
            return {"verified": False, "reason": f"request: older than {self.max_age_blocks} blocks",
                    "revealed": {}, "height": height}
        try:
            check = verify_presentation(self.ledger.state_at(height), dict(request), presentation)
        except LookupError as exc:  # the node no longer keeps the state of that height
            return {"verified": False, "reason": f"ledger: {exc}", "revealed": {}, "height": height}
        return {"verified": check.verified, "reason": check.reason, "revealed": check.revealed, "height": height}


def raw_verify(request: Mapping[str, Any], presentation: str, schemas: Mapping[str, Any], cred_defs: Mapping[str, Any],
               rev_reg_defs: Mapping[str, Any], status_lists: Sequence[Any]) -> bool:
    """The anoncreds library's own verification with objects the caller already holds (benchmarks)."""
    return anoncreds.Presentation.load(presentation).verify(json.dumps(dict(request)), schemas, cred_defs,
                                                            rev_reg_defs or None, list(status_lists) or None)
