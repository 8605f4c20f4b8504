"""Vault keys on the ledger: the X25519 public key each owner account (and each consumer DID) has records
sealed to, so that devices, the gateway and the vault service learn it from the ledger, not from a
file handed around.

An owner registers under its own 'city…' account (the same pseudonym its data sets are filed under,
so no DID links to it); a consumer organisation registers under its DID, signed by the DID's
controller. A new registration replaces the previous key (rotation, e.g. after erasing the
whole vault): devices seal new records to the new key from the next block on.
"""

from __future__ import annotations

from ...core.encoding import decoder, encode
from ...core.state import StateReader
from ...core.types import address_from_str, address_to_str
from ..base import Context
from ..identity.did import is_did
from .errors import ERR_INVALID_VAULT_KEY, ERR_NOT_CONTROLLER, ERR_NOT_OWNER
from .expected import Identity
from .keys import vault_key_key
from .messages import VAULT_KEY_LEN, RegisterVaultKey, VaultKeyRecord

_VAULT_KEY = decoder(VaultKeyRecord)
_HIGH_BIT = 0x80
# The points of small order on Curve25519 (and the field's edge values), top bit ignored as X25519
# ignores it: sealing to one gives an all-zero shared secret, so no one could open the records.
_SMALL_ORDER = frozenset(bytes.fromhex(h) for h in (
    "00" * 32,
    "01" + "00" * 31,
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ec" + "ff" * 30 + "7f",
    "ed" + "ff" * 30 + "7f",
    "ee" + "ff" * 30 + "7f",
))


def is_usable_vault_key(key: bytes) -> bool:
    """True for 32 bytes that are not a small-order Curve25519 point."""
    if not isinstance(key, bytes) or len(key) != VAULT_KEY_LEN:
        return False
    return key[:-1] + bytes([key[-1] & ~_HIGH_BIT & 0xFF]) not in _SMALL_ORDER


def is_vault_subject(text: str) -> bool:
    """True for a 'city…' account or a DID."""
    if is_did(text):
        return True
    try:
        address_from_str(text)
    except (ValueError, TypeError):
        return False
    return text.startswith("city") and text == text.lower()


def decode_vault_key(raw: bytes) -> VaultKeyRecord:
    """A vault key record from its stored bytes."""
    return _VAULT_KEY.decode_lenient(raw)


def get_vault_key(state: StateReader, subject: str) -> VaultKeyRecord | None:
    """The vault key registered for a 'city…' account or a DID, or None."""
    if not isinstance(subject, str) or not is_vault_subject(subject):
        return None
    raw = state.get(vault_key_key(subject))
    return None if raw is None else _VAULT_KEY.decode_lenient(raw)


def process_register_vault_key(identity: Identity, ctx: Context, msg: RegisterVaultKey) -> None:
    """File the key under the sender's account, or under a DID the signer controls."""
    # Check: a usable X25519 public key.
    if not is_usable_vault_key(msg.key):
        raise ERR_INVALID_VAULT_KEY(f"key: expected a {VAULT_KEY_LEN}-byte X25519 public key of large order, "
                                    f"got {len(msg.key)} bytes", "key")
    # Check: the sender's own account, or an active DID whose controller signed.
    subject = msg.subject
    if is_did(subject):
        record = identity.get_did(ctx.state, subject)
        if record is None or record.deactivated:
            raise ERR_INVALID_VAULT_KEY(f"subject: {subject[:80]!r} is not an active DID", "subject")
        if record.controller != ctx.signer:
            raise ERR_NOT_CONTROLLER(f"subject: the signer does not control {subject}", "subject")
    elif subject != address_to_str(ctx.sender):
        raise ERR_NOT_OWNER(f"subject: expected the sender's account {address_to_str(ctx.sender)} or a DID "
                            f"the signer controls, got {subject[:80]!r}", "subject")
    ctx.state.set(vault_key_key(subject), encode(VaultKeyRecord(subject, msg.key, ctx.height)))
    ctx.emit("vault_key_registered", subject=subject, key=msg.key)


def render_vault_key(record: VaultKeyRecord) -> dict:
    """A vault key as queries answer it."""
    return {"subject": record.subject, "key": record.key.hex(), "height": record.height}


def query_vault_key(state: StateReader, args: dict[str, str]) -> dict:
    """The vault key of {'subject'} (a 'city…' account or a DID)."""
    subject = args.get("subject", "")
    record = get_vault_key(state, subject)
    if record is None:
        raise LookupError(f"subject: no vault key registered for {subject[:80]!r}")
    return render_vault_key(record)
