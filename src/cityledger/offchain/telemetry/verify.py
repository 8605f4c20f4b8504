"""The gateway's check of a message: pure, it never decrypts and never writes.

Given the registered devices and the last sequence number accepted from the sender, it answers the
opaque record to store (and where) or refuses with a TelemetryError; the caller stores nothing on a
refusal and advances its last sequence number only after the record is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...core.encoding import DecodeError, decoder, encode
from ...core.keys import PublicKey, verify_signature
from .format import (
    MAX_CONSUMER_WRAPS,
    MAX_MESSAGE_BYTES,
    SIGNATURE_LEN,
    WRAP_CT_LEN,
    X25519_KEY_LEN,
    StoredRecord,
    TelemetryError,
    TelemetryMessage,
    WrappedKey,
    check_header,
    compute_ciphertext_len,
    compute_record_id_of_blob,
    compute_signing_bytes,
    compute_wraps_digest,
)

_MESSAGE = decoder(TelemetryMessage)


@dataclass(frozen=True)
class DeviceEntry:
    """What the gateway knows of a registered device: its signing key and its owner's vault."""

    did: str
    public_key: PublicKey
    owner: str
    owner_vault_key: bytes


@dataclass(frozen=True)
class VerifiedRecord:
    """An accepted message, as the vault stores it: still ciphertext."""

    record_id: bytes
    owner: str
    stored: StoredRecord
    blob: bytes  # the canonical bytes of `stored`
    owner_wrap: WrappedKey
    consumer_wraps: list[WrappedKey]
    gap: int  # sequence numbers skipped since the last accepted one (lost or withheld messages)


DeviceLookup = Callable[[str], "DeviceEntry | None"]


@dataclass(frozen=True)
class CheckedMessage:
    """A message past every check that needs neither its sender's last sequence number nor the
    signature check: what the gateway hands its worker processes to verify in parallel."""

    message: TelemetryMessage
    device: DeviceEntry
    wraps_digest: bytes
    signing_bytes: bytes  # what the device's signature must be over


def check_message(raw: bytes, lookup: DeviceLookup) -> CheckedMessage:
    """The decoded message of a registered device, its format and wraps checked; else TelemetryError.
    Neither the sequence number nor the signature is checked yet (finish_message does)."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise TelemetryError("too_large", "message", f"expected at most {MAX_MESSAGE_BYTES} bytes, got {len(raw)}")
    try:
        message = _MESSAGE.decode(raw)
    except DecodeError as exc:
        raise TelemetryError("malformed", "message", str(exc)) from None
    header = message.header
    schema = check_header(header)
    # Registered devices only: the key that signs is the one the registry holds.
    device = lookup(header.device)
    if device is None:
        raise TelemetryError("unknown_device", "header.device", f"{header.device!r} is not a registered device")
    check_wraps(message, device)
    if len(message.ciphertext) != compute_ciphertext_len(schema, header.window_s):
        raise TelemetryError("malformed", "ciphertext",
                             f"expected {compute_ciphertext_len(schema, header.window_s)} bytes, got {len(message.ciphertext)}")
    digest = compute_wraps_digest(message.owner_wrap, message.consumer_wraps)
    return CheckedMessage(message, device, digest, compute_signing_bytes(header, message.ciphertext, digest))


def check_checked_signature(checked: CheckedMessage) -> bool:
    """True if the message's signature is the device's over its signing bytes (what a worker runs)."""
    signature = checked.message.signature
    return len(signature) == SIGNATURE_LEN and verify_signature(checked.device.public_key, checked.signing_bytes,
                                                                signature)


def finish_message(checked: CheckedMessage, last_seq: int | None, signature_ok: bool) -> VerifiedRecord:
    """The record of a checked message given the sender's last accepted sequence number and the
    signature check's verdict; else TelemetryError (a replay is named before a bad signature)."""
    message, header = checked.message, checked.message.header
    # A replay or a reordered message has a number at or below the last accepted one.
    if last_seq is not None and header.seq <= last_seq:
        raise TelemetryError("replay", "header.seq", f"expected above {last_seq}, got {header.seq}")
    if not signature_ok:
        raise TelemetryError("bad_signature", "signature", f"not a signature of {header.device!r}")
    stored = StoredRecord(header, message.ciphertext, checked.wraps_digest, message.signature)
    gap = 0 if last_seq is None else header.seq - last_seq - 1
    blob = encode(stored)
    return VerifiedRecord(compute_record_id_of_blob(blob), checked.device.owner, stored, blob, message.owner_wrap,
                          list(message.consumer_wraps), gap)


def verify_message(raw: bytes, lookup: DeviceLookup, last_seq: int | None) -> VerifiedRecord:
    """The record of a well-formed, signed, fresh message from a registered device; else TelemetryError."""
    checked = check_message(raw, lookup)
    if last_seq is not None and checked.message.header.seq <= last_seq:
        return finish_message(checked, last_seq, False)  # refused as a replay before any signature work
    return finish_message(checked, last_seq, check_checked_signature(checked))


def is_signed_by(stored: StoredRecord, public_key: PublicKey) -> bool:
    """True if the device key signed this stored record: the owner's evidence, to an insurer say, that
    the record came from the device; it holds after erasure (the wraps' digest is kept, not the wraps)."""
    signing_bytes = compute_signing_bytes(stored.header, stored.ciphertext, stored.wraps_digest)
    return verify_signature(public_key, signing_bytes, stored.signature)


def check_wraps(message: TelemetryMessage, device: DeviceEntry) -> None:
    """Raise TelemetryError unless the owner's wrap is for the device's owner and the consumers'
    wraps are well formed, few enough, sorted and distinct."""
    if message.owner_wrap.recipient != device.owner_vault_key:
        raise TelemetryError("wrong_owner", "owner_wrap.recipient", "expected the vault key of the device's owner")
    wraps = message.consumer_wraps
    if len(wraps) > MAX_CONSUMER_WRAPS:
        raise TelemetryError("malformed", "consumer_wraps", f"expected at most {MAX_CONSUMER_WRAPS}, got {len(wraps)}")
    recipients = [wrap.recipient for wrap in wraps]
    if recipients != sorted(set(recipients)) or device.owner_vault_key in recipients:
        raise TelemetryError("malformed", "consumer_wraps", "expected distinct consumers sorted by key, the owner not among them")
    for index, wrap in enumerate([message.owner_wrap, *wraps]):
        field = "owner_wrap" if index == 0 else f"consumer_wraps[{index - 1}]"
        if len(wrap.recipient) != X25519_KEY_LEN or len(wrap.enc) != X25519_KEY_LEN or len(wrap.ct) != WRAP_CT_LEN:
            raise TelemetryError("malformed", field,
                                 f"expected recipient and enc of {X25519_KEY_LEN} bytes, ct of {WRAP_CT_LEN}")
