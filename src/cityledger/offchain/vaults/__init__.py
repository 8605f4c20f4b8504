"""Owners' vaults: sealed telemetry records per owner, read by the owner, released to consumers by
their own wrapped key only, erased by destroying keys. docs/PRIVACY.md says who can read what."""

from .sqlite_store import SqliteVaultStore
from .store import MAX_LIST_RECORDS, KeyBlob, PutItem, RecordMeta, VaultStore
from .vault import (
    MAX_OPEN_VAULTS,
    ConsentCheck,
    ConsumerEnvelope,
    Erasure,
    Vault,
    VaultError,
    VaultHost,
    Window,
    destroy_key_file,
    load_key_file,
    save_key_file,
)

__all__ = [
    "ConsentCheck",
    "ConsumerEnvelope",
    "Erasure",
    "KeyBlob",
    "MAX_LIST_RECORDS",
    "MAX_OPEN_VAULTS",
    "PutItem",
    "RecordMeta",
    "SqliteVaultStore",
    "Vault",
    "VaultError",
    "VaultHost",
    "VaultStore",
    "Window",
    "destroy_key_file",
    "load_key_file",
    "save_key_file",
]
