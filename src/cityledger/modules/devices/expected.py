"""What devices needs of other modules, as narrow Protocols (cosmos-sdk's expected_keepers).

A device is a did:city DID of kind "device" plus a registry record: the DID half lives in the
identity module's state, and only identity writes it. Devices reaches it through `Identity`, whose
real implementation node/modules.py passes to `new_module`; tests may pass any object that fits.
"""

from __future__ import annotations

from typing import Any, Protocol

from ...core.keys import PublicKey, Signer
from ...core.state import StateReader
from ..base import Context
from ..identity.messages import DidRecord, Service, VerificationKey


class PresentationVerdict(Protocol):
    """The outcome of checking a presentation: verified or not, why, and the revealed values."""

    verified: bool
    reason: str
    revealed: dict[str, Any]


class Identity(Protocol):
    """The identity module as devices uses it: DID records, the issuer registry, presentations."""

    def get_did(self, state: StateReader, did: str) -> DidRecord | None:
        """A DID's record, or None."""
        ...

    def keys_for(self, record: DidRecord, purpose: str) -> list[PublicKey]:
        """The keys a DID lists for one verification purpose (none once deactivated)."""
        ...

    def is_accredited(self, state: StateReader, did: str, credential_type: str) -> bool:
        """True if `did` is an active organisation accredited to issue `credential_type`."""
        ...

    def create_did_record(self, ctx: Context, kind: int, controller: Signer, salt: bytes,
                          keys: list[VerificationKey], services: list[Service]) -> DidRecord:
        """Validate and write a new DID (identity writes its own keys); raise TxError."""
        ...

    def deactivate(self, ctx: Context, record: DidRecord) -> None:
        """Mark a DID deactivated for good."""
        ...

    def verify_presentation(self, state: StateReader, request: dict[str, Any],
                            presentation: str | bytes) -> PresentationVerdict:
        """Check an AnonCreds presentation against `request` with every object read from `state`."""
        ...
