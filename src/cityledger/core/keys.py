"""Keys and signatures: Ed25519 (default) and ECDSA P-256 (vehicles' secure elements).

A signer is a k-of-n set of public keys; a single key is the 1-of-1 case. An account's address is
the first 20 bytes of SHA-256 over the canonical encoding of its signer, so a k-of-n organisation
account and a personal key account are addressed the same way.

P-256 signatures are 64 bytes r||s with s in the lower half of the group order (low-S), so a
signature has one form only and a transaction's id cannot be changed by a third party.

Ed25519 signatures are made with libsodium (PyNaCl) and verified under the ZIP-215 rules (with
ed25519-zebra), the rules CometBFT itself applies to validator votes: one precise definition of a
valid signature that every implementation, single or batched, agrees on — what consensus needs —
and about 1.4 times faster here than libsodium's verification. ZIP-215 alone would accept public
keys of small order, for which anyone can forge signatures; a key must therefore also be a
canonically encoded point of the prime-order subgroup (libsodium's check, cached per key).
"""

from __future__ import annotations

import hashlib
import os

import ed25519_zebra
import nacl.bindings
import nacl.signing
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from .encoding import Record, encode
from .types import ADDRESS_LEN, Address

SCHEME_ED25519 = 1
SCHEME_P256 = 2
SCHEME_NAMES = {SCHEME_ED25519: "ed25519", SCHEME_P256: "p256"}
PUBLIC_KEY_LEN = {SCHEME_ED25519: 32, SCHEME_P256: 33}
SIGNATURE_LEN = 64
MAX_SIGNER_KEYS = 16
MAX_CHECKED_KEYS = 100_000  # Ed25519 keys whose point check is remembered
MAX_PARSED_P256_KEYS = 10_000  # P-256 points kept decoded (a fifth of a verification each to decode)
MAX_CHECKED_SIGNERS = 100_000  # signers whose shape check and address are remembered

_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P256_HALF_ORDER = _P256_ORDER // 2


class PublicKey(Record):
    """A public key: scheme (1 = Ed25519, 2 = P-256 compressed) and its bytes."""

    scheme: int
    key: bytes


class Signer(Record):
    """Who signs for an account: `threshold` of `keys` must sign (1-of-1 for a single key)."""

    threshold: int
    keys: list[PublicKey]


def scheme_from_name(name: str) -> int:
    """Map 'ed25519' or 'p256' to a scheme number; raise ValueError otherwise."""
    for number, known in SCHEME_NAMES.items():
        if known == name:
            return number
    raise ValueError(f"scheme: expected one of {sorted(SCHEME_NAMES.values())}, got {name!r}")


class PrivateKey:
    """A private key of either scheme; `seed` is 32 bytes (Ed25519 seed or P-256 scalar)."""

    def __init__(self, scheme: int, seed: bytes) -> None:
        if scheme not in SCHEME_NAMES:
            raise ValueError(f"scheme: expected 1 (ed25519) or 2 (p256), got {scheme}")
        if len(seed) != 32:
            raise ValueError(f"seed: expected 32 bytes, got {len(seed)}")
        self.scheme = scheme
        self.seed = seed
        if scheme == SCHEME_ED25519:
            self._nacl = nacl.signing.SigningKey(seed)
            self.public_key = PublicKey(scheme, bytes(self._nacl.verify_key))
        else:
            self._ec = ec.derive_private_key(int.from_bytes(seed, "big"), ec.SECP256R1())
            point = self._ec.public_key().public_bytes(
                encoding=_serialization().Encoding.X962,
                format=_serialization().PublicFormat.CompressedPoint,
            )
            self.public_key = PublicKey(scheme, point)

    @classmethod
    def generate(cls, scheme: int = SCHEME_ED25519) -> "PrivateKey":
        """A fresh random key."""
        if scheme == SCHEME_P256:
            scalar = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
            return cls(scheme, scalar.to_bytes(32, "big"))
        return cls(scheme, os.urandom(32))

    def sign(self, message: bytes) -> bytes:
        """A 64-byte signature over message (P-256: SHA-256, low-S r||s)."""
        if self.scheme == SCHEME_ED25519:
            return self._nacl.sign(message).signature
        der = self._ec.sign(message, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        if s > _P256_HALF_ORDER:
            s = _P256_ORDER - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def signer(self) -> Signer:
        """The 1-of-1 signer of this key."""
        return Signer(1, [self.public_key])

    def address(self) -> Address:
        """The address of this key's 1-of-1 account."""
        return compute_address(self.signer())


def _serialization():
    from cryptography.hazmat.primitives import serialization

    return serialization


def verify_signature(public_key: PublicKey, message: bytes, signature: bytes) -> bool:
    """True if signature is a valid signature by public_key over message."""
    if len(signature) != SIGNATURE_LEN:
        return False
    if public_key.scheme == SCHEME_ED25519:
        return is_strong_ed25519_key(public_key.key) and verify_ed25519_zip215(public_key.key, message, signature)
    if public_key.scheme == SCHEME_P256:
        return _verify_p256(public_key.key, message, signature)
    return False


def verify_ed25519_zip215(key: bytes, message: bytes, signature: bytes) -> bool:
    """An Ed25519 signature check under ZIP-215, as CometBFT verifies votes (no key check)."""
    return len(key) == 32 and len(signature) == SIGNATURE_LEN and ed25519_zebra.ed_verify(signature, message, key)


_strong_keys: dict[bytes, bool] = {}


def is_strong_ed25519_key(key: bytes) -> bool:
    """True if key encodes, canonically, a point of the prime-order subgroup (not of small order)."""
    known = _strong_keys.get(key)
    if known is None:
        known = len(key) == 32 and nacl.bindings.crypto_core_ed25519_is_valid_point(key)
        if len(_strong_keys) >= MAX_CHECKED_KEYS:
            _strong_keys.clear()
        _strong_keys[key] = known
    return known


def _verify_p256(point: bytes, message: bytes, signature: bytes) -> bool:
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < _P256_ORDER and 0 < s <= _P256_HALF_ORDER):
        return False
    try:
        key = _p256_key(point)
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


_p256_keys: dict[bytes, ec.EllipticCurvePublicKey] = {}


def _p256_key(point: bytes) -> ec.EllipticCurvePublicKey:
    """The decoded P-256 point (ValueError if it is not one); a payee checks one key's vouchers many times."""
    key = _p256_keys.get(point)
    if key is None:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        if len(_p256_keys) >= MAX_PARSED_P256_KEYS:
            _p256_keys.clear()
        _p256_keys[point] = key
    return key


def validate_signer(signer: Signer) -> str | None:
    """None if the signer is well formed, else a message naming the bad field."""
    if not 1 <= len(signer.keys) <= MAX_SIGNER_KEYS:
        return f"signer.keys: expected 1 to {MAX_SIGNER_KEYS} keys, got {len(signer.keys)}"
    if not 1 <= signer.threshold <= len(signer.keys):
        return f"signer.threshold: expected 1 to {len(signer.keys)}, got {signer.threshold}"
    for index, key in enumerate(signer.keys):
        expected = PUBLIC_KEY_LEN.get(key.scheme)
        if expected is None:
            return f"signer.keys[{index}].scheme: expected 1 (ed25519) or 2 (p256), got {key.scheme}"
        if len(key.key) != expected:
            return f"signer.keys[{index}].key: expected {expected} bytes, got {len(key.key)}"
    encoded = [encode(key) for key in signer.keys]
    if encoded != sorted(set(encoded)):
        return "signer.keys: expected distinct keys sorted by their encoding"
    return None


def make_signer(threshold: int, keys: list[PublicKey]) -> Signer:
    """A k-of-n signer with its keys in canonical (sorted, distinct) order."""
    ordered = sorted({encode(key): key for key in keys}.items())
    signer = Signer(threshold, [key for _, key in ordered])
    problem = validate_signer(signer)
    if problem:
        raise ValueError(problem)
    return signer


def compute_address(signer: Signer) -> Address:
    """The account address of a signer."""
    return _address_of_encoded(encode(signer))


def _address_of_encoded(encoded_signer: bytes) -> Address:
    return Address(hashlib.sha256(b"cityledger/address/1\x00" + encoded_signer).digest()[:ADDRESS_LEN])


_checked_signers: dict[bytes, tuple[str | None, Address | None]] = {}


def inspect_signer(signer: Signer) -> tuple[str | None, Address | None]:
    """(validate_signer's verdict, the address if the signer is well formed), remembered by the
    signer's encoding: an account signs tx after tx, and both take longer than the lookup."""
    encoded = encode(signer)
    facts = _checked_signers.get(encoded)
    if facts is None:
        problem = validate_signer(signer)
        facts = (problem, None if problem else _address_of_encoded(encoded))
        if len(_checked_signers) >= MAX_CHECKED_SIGNERS:
            _checked_signers.clear()
        _checked_signers[encoded] = facts
    return facts
