"""Sealing and opening windows: AES-256-GCM under a per-record data key, wrapped with HPKE.

HPKE (RFC 9180, base mode) with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM, from
pyhpke on top of `cryptography`: a standard construction instead of a hand-made X25519 + HKDF. The
info string names this use and the associated data is the digest of the record's header, so a
wrapped key opens only for the record it was made for.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey
from pyhpke.exceptions import PyHPKEError

from ...core.encoding import encode
from ...core.hashing import sha256
from .format import (
    WRAP_CT_LEN,
    X25519_KEY_LEN,
    RecordHeader,
    Sample,
    StoredRecord,
    TelemetryError,
    WrappedKey,
    check_header,
    compute_nonce,
    decode_window,
)

DATA_KEY_LEN = 32
WRAP_INFO = b"cityledger/telemetry/data-key/1"
DOMAIN_WRAP_AAD = b"cityledger/telemetry/wrap-aad/1\x00"

_SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)


class VaultKey:
    """An X25519 key pair that records are sealed to: an owner's vault key, or a consumer's."""

    def __init__(self, private: X25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls) -> "VaultKey":
        """A fresh random key."""
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, raw: bytes) -> "VaultKey":
        """The key of 32 private bytes."""
        if len(raw) != X25519_KEY_LEN:
            raise ValueError(f"vault key: expected {X25519_KEY_LEN} bytes, got {len(raw)}")
        return cls(X25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        """The 32 private bytes, to be kept in an owner-only file."""
        return self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def kem_key(self):
        """The private key as pyhpke takes it."""
        return KEMKey.from_pyca_cryptography_key(self._private)


def new_data_key() -> bytes:
    """A fresh random AES-256 key for one record."""
    return os.urandom(DATA_KEY_LEN)


def compute_wrap_aad(header: RecordHeader) -> bytes:
    """The associated data of a record's wrapped keys: its header's digest."""
    return sha256(DOMAIN_WRAP_AAD + encode(header))


def wrap_data_key(data_key: bytes, recipient: bytes, header: RecordHeader, field: str = "recipient") -> WrappedKey:
    """The data key sealed to recipient's X25519 public key; raise TelemetryError on a bad key."""
    if not isinstance(recipient, bytes) or len(recipient) != X25519_KEY_LEN:
        raise TelemetryError("malformed", field, f"expected a {X25519_KEY_LEN}-byte X25519 public key")
    try:
        public = KEMKey.from_pyca_cryptography_key(X25519PublicKey.from_public_bytes(recipient))
        enc, context = _SUITE.create_sender_context(public, info=WRAP_INFO)
    except (ValueError, PyHPKEError):
        # A low-order point gives an all-zero shared secret, which HPKE refuses: no one could open it.
        raise TelemetryError("malformed", field, "not a usable X25519 public key") from None
    return WrappedKey(recipient, enc, context.seal(data_key, aad=compute_wrap_aad(header)))


def unwrap_data_key(wrap: WrappedKey, key: VaultKey, header: RecordHeader) -> bytes:
    """The data key of a wrap sealed to key; raise TelemetryError('undecryptable') otherwise."""
    if wrap.recipient != key.public or len(wrap.ct) != WRAP_CT_LEN:
        raise TelemetryError("undecryptable", "wrap.recipient", "not sealed to this key")
    try:
        context = _SUITE.create_recipient_context(wrap.enc, key.kem_key(), info=WRAP_INFO)
        data_key = context.open(wrap.ct, aad=compute_wrap_aad(header))
    except (ValueError, PyHPKEError, InvalidTag):
        raise TelemetryError("undecryptable", "wrap", "does not open with this key") from None
    if len(data_key) != DATA_KEY_LEN:
        raise TelemetryError("undecryptable", "wrap", f"expected a {DATA_KEY_LEN}-byte data key")
    return data_key


def encrypt_window(data_key: bytes, header: RecordHeader, plaintext: bytes) -> bytes:
    """The window's ciphertext: AES-256-GCM, the sequence number as nonce, the header as AD."""
    return AESGCM(data_key).encrypt(compute_nonce(header.seq), plaintext, encode(header))


def decrypt_window(data_key: bytes, header: RecordHeader, ciphertext: bytes) -> bytes:
    """The window's plaintext; raise TelemetryError('undecryptable') if key, header or bytes differ."""
    try:
        return AESGCM(data_key).decrypt(compute_nonce(header.seq), ciphertext, encode(header))
    except (InvalidTag, ValueError):
        raise TelemetryError("undecryptable", "ciphertext", "does not decrypt with this key and header") from None


def open_record(stored: StoredRecord, wrap: WrappedKey, key: VaultKey) -> list[Sample]:
    """The samples of a stored record, for the holder of the key its wrap was sealed to."""
    schema = check_header(stored.header)
    data_key = unwrap_data_key(wrap, key, stored.header)
    return decode_window(schema, stored.header, decrypt_window(data_key, stored.header, stored.ciphertext))
