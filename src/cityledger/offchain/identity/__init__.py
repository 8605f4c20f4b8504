"""Identity services off the chain: the resident's wallet, the issuing offices, the verifier.

    issuer.offer(type)                -> offer          (issuer -> holder)
    wallet.request_credential(offer)  -> request        (holder -> issuer)
    issuer.issue(request, values, ref) -> credential    (issuer -> holder)
    wallet.store_credential(credential)
    verifier.request(...)             -> request        (verifier -> holder)
    wallet.present(request)           -> presentation   (holder -> verifier)
    verifier.verify(request, presentation) -> verdict

docs/IDENTITY_PROTOCOL.md describes the messages.
"""

from .issuer import IssuanceError, IssuerService
from .ledger import LedgerError, LocalLedger, TxOutcome
from .tails import TailsFetcher, TailsStore, compute_tails_hash
from .types import (
    DEVICE_MANUFACTURER,
    RESIDENT_ID,
    RESIDENT_ID_TYPE,
    VEHICLE_REGISTRATION,
    VEHICLE_REGISTRATION_TYPE,
    CredentialType,
    compute_today,
    compute_years_before,
    compute_yyyymmdd,
)
from .verifier import Verifier, raw_verify
from .wallet import Wallet, WalletError

__all__ = [
    "CredentialType", "DEVICE_MANUFACTURER", "IssuanceError", "IssuerService", "LedgerError", "LocalLedger",
    "RESIDENT_ID", "RESIDENT_ID_TYPE", "TailsFetcher", "TailsStore", "TxOutcome", "VEHICLE_REGISTRATION",
    "VEHICLE_REGISTRATION_TYPE", "Verifier", "Wallet", "WalletError", "compute_tails_hash", "compute_today",
    "compute_years_before", "compute_yyyymmdd", "raw_verify",
]
