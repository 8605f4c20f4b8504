"""cityledger.sdk: keys, transactions, clients and proofs for programs that use a cityledger node.

    from cityledger.sdk import Client, Keystore, transfer

    key = Keystore("~/.cityledger/keystore").load("alice", passphrase)
    with Client("http://127.0.0.1:8080") as node:
        status = node.status()
        tx = transfer(status.chain_id, key, node.get_nonce(key.address()), "city…", 5_000_000)
        node.submit(tx, wait=True)
"""

from ..core.accounts import account_key, decode_account
from ..core.keys import PrivateKey, make_signer
from ..modules.bank import UNIT
from ..modules.governance import MembershipChange, ParamChange, ValidatorChange
from ..offchain.identity import Wallet, WalletError
from .charging import AuthorizationRefused, authorize_vehicle
from .client import AsyncClient, Client
from .errors import (
    ApiError,
    CityLedgerError,
    KeyExists,
    KeyNotFound,
    KeystoreError,
    ProofError,
    PublicationError,
    TxRejected,
    WrongPassphrase,
)
from .identity import IdentityClient, RemoteLedger
from .keystore import KeyInfo, Keystore
from .models import (
    Account,
    BatchResult,
    Block,
    CheckResult,
    Health,
    QueryResult,
    StateValue,
    Status,
    SubmitResult,
    TxResult,
    TxStatus,
)
from .payments import (
    Voucher,
    VoucherError,
    VoucherTracker,
    close_channel,
    declare_counterparty,
    finalize_channel,
    freeze_device,
    lock_escrow,
    open_channel,
    redeem_voucher,
    refund_escrow,
    release_escrow,
    set_policy,
    start_close,
    top_up_channel,
)
from .proofs import parse_proof, verify_state_proof
from .txs import multi_send, propose, sign, to_address, transfer, tx_id, vote

__all__ = [
    "Account",
    "ApiError",
    "AsyncClient",
    "AuthorizationRefused",
    "BatchResult",
    "Block",
    "CheckResult",
    "CityLedgerError",
    "Client",
    "Health",
    "IdentityClient",
    "KeyExists",
    "KeyInfo",
    "KeyNotFound",
    "Keystore",
    "KeystoreError",
    "MembershipChange",
    "ParamChange",
    "PrivateKey",
    "ProofError",
    "PublicationError",
    "QueryResult",
    "RemoteLedger",
    "StateValue",
    "Status",
    "SubmitResult",
    "TxRejected",
    "TxResult",
    "TxStatus",
    "UNIT",
    "ValidatorChange",
    "Voucher",
    "VoucherError",
    "VoucherTracker",
    "Wallet",
    "WalletError",
    "WrongPassphrase",
    "account_key",
    "authorize_vehicle",
    "close_channel",
    "declare_counterparty",
    "decode_account",
    "finalize_channel",
    "freeze_device",
    "lock_escrow",
    "make_signer",
    "multi_send",
    "open_channel",
    "parse_proof",
    "propose",
    "redeem_voucher",
    "refund_escrow",
    "release_escrow",
    "set_policy",
    "sign",
    "start_close",
    "to_address",
    "top_up_channel",
    "transfer",
    "tx_id",
    "verify_state_proof",
    "vote",
]
