"""What mobility needs of other modules and of the prover library, as narrow Protocols.

Budgets live in bank's account records: mobility moves them through `Bank` (modules/bank/keeper.py).
Who may sign enrollment tickets is identity's to say: `Identity`. Proofs are checked by a
`Verifier` (proofs.ProofVerifier with the pinned circuit; node/modules.py builds it).
"""

from __future__ import annotations

from typing import Protocol

from ...core.keys import PublicKey
from ...core.state import Overlay, StateReader
from ..identity.messages import DidRecord


class Bank(Protocol):
    """The bank as mobility uses it: read a balance, move credits between two accounts."""

    def get_balance(self, state: StateReader, address: bytes) -> int:
        """An account's balance in micro-credits."""
        ...

    def send(self, state: Overlay, sender: bytes, recipient: bytes, amount: int) -> None:
        """Move `amount` from `sender` to `recipient`; raise bank's TxError if it cannot."""
        ...


class Identity(Protocol):
    """The identity module as mobility uses it: DIDs, their keys and the issuer registry."""

    def get_did(self, state: StateReader, did: str) -> DidRecord | None:
        """A DID's record, or None."""
        ...

    def keys_for(self, record: DidRecord, purpose: str) -> list[PublicKey]:
        """The keys a DID lists for one verification purpose (none once deactivated)."""
        ...

    def is_accredited(self, state: StateReader, did: str, credential_type: str) -> bool:
        """True if `did` is an active organisation accredited to issue `credential_type`."""
        ...


class Verdict(Protocol):
    """A proof verdict."""

    verified: bool
    reason: str


class Verifier(Protocol):
    """Checks a score proof against the instances the chain built (deterministically)."""

    def verify(self, model: str, instances: list[str], proof: bytes) -> Verdict:
        """The verdict on `proof` for `instances` under `model`'s pinned parameters."""
        ...

    def remember_verified(self, model: str, instances: list[str], proof: bytes) -> None:
        """Record a verdict this node's own verifier process reached on these bytes."""
        ...
