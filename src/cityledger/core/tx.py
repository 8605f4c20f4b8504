"""The transaction envelope: chain id, signer, nonce, expiry height, messages, signatures.

    Tx      = [body, signatures]
    TxBody  = [chain_id, signer, nonce, expiry_height, messages]
    sign bytes = b"cityledger/tx-sign/1\\x00" + canonical(body)
    tx id   = SHA-256(canonical(tx))

The sender is the address of `signer` (a k-of-n key set); `threshold` distinct keys of it sign
the same sign bytes. `nonce` is the sender's next sequence number (replay protection) and the tx
is invalid in any block above `expiry_height` (0 means it never expires).
"""

from __future__ import annotations

import re
from typing import Any, Generic, NamedTuple, Sequence, TypeVar

import msgspec

from .encoding import DecodeError, Message, Record, compute_field_name, decoder, encode
from .errors import (
    ERR_CHAIN_ID,
    ERR_DECODE,
    ERR_INVALID,
    ERR_NON_CANONICAL,
    ERR_SIGNATURE,
    ERR_TOO_LARGE,
    ERR_TOO_MANY_MESSAGES,
    ERR_UNKNOWN_MESSAGE,
)
from .hashing import DOMAIN_TX_SIGN, compute_tx_id
from .keys import PrivateKey, Signer, inspect_signer, verify_signature
from .types import Address

M = TypeVar("M")

MAX_TX_BYTES = 256 * 1024
MAX_MESSAGES_PER_TX = 64
MAX_NONCE = 2**63 - 1


class SignatureEntry(Record):
    """One signature: the index of the signing key in the signer's key list, and the 64 bytes."""

    key_index: int
    signature: bytes


class TxBody(Record, Generic[M]):
    """What is signed."""

    chain_id: str
    signer: Signer
    nonce: int
    expiry_height: int
    messages: list[M]


class Tx(Record, Generic[M]):
    """A signed transaction."""

    body: TxBody[M]
    signatures: list[SignatureEntry]


class DecodedTx(NamedTuple):
    """A decoded, statelessly valid transaction and what the node derives from it (a tuple: hot).
    It keeps no reference to the encoded bytes, so a cache of these holds each tx once."""

    tx: Tx
    tx_id: bytes
    sender: Address

    @property
    def nonce(self) -> int:
        return self.tx.body.nonce

    @property
    def messages(self) -> list[Any]:
        return self.tx.body.messages


def compute_sign_bytes(body: TxBody) -> bytes:
    """The bytes every signer signs."""
    return DOMAIN_TX_SIGN + encode(body)


def build_tx(
    chain_id: str,
    keys: Sequence[PrivateKey],
    nonce: int,
    messages: Sequence[Message],
    expiry_height: int = 0,
    signer: Signer | None = None,
) -> bytes:
    """Encode and sign a transaction; `signer` defaults to the 1-of-1 signer of keys[0]."""
    signer = signer or keys[0].signer()
    body = TxBody(chain_id, signer, nonce, expiry_height, list(messages))
    sign_bytes = compute_sign_bytes(body)
    entries = []
    for key in keys:
        try:
            index = signer.keys.index(key.public_key)
        except ValueError:
            raise ValueError("keys: a signing key is not one of the signer's keys") from None
        entries.append(SignatureEntry(index, key.sign(sign_bytes)))
    entries.sort(key=lambda entry: entry.key_index)
    return encode(Tx(body, entries))


class TxCodec:
    """Decodes transactions whose messages are the registered message types."""

    def __init__(self, message_types: Sequence[type[Message]], chain_id: str) -> None:
        if not message_types:
            raise ValueError("message_types: expected at least one message type")
        union = message_types[0] if len(message_types) == 1 else _union(message_types)
        self._decoder = decoder(Tx[union])
        self._info = msgspec.inspect.type_info(Tx[union])
        self.chain_id = chain_id
        self.known_tags = sorted(t.__struct_config__.tag for t in message_types)

    def decode(self, raw: bytes, tx_id: bytes | None = None) -> DecodedTx:
        """Decode and validate without state; raise TxError naming the bad field. tx_id, if the
        caller has it, is compute_tx_id(raw)."""
        if len(raw) > MAX_TX_BYTES:
            raise ERR_TOO_LARGE(f"tx: {len(raw)} bytes exceeds the limit of {MAX_TX_BYTES}", "tx")
        try:
            tx = self._decoder.decode(raw)
        except DecodeError as exc:
            text = str(exc)
            if text.startswith("non-canonical"):
                raise ERR_NON_CANONICAL(f"tx: {text}", "tx") from None
            if _UNKNOWN_TAG.search(text):
                raise ERR_UNKNOWN_MESSAGE(self._describe(text, raw), "body.messages") from None
            raise ERR_DECODE(self._describe(text, raw), "tx") from None
        address = check_stateless(tx, self.chain_id)
        return DecodedTx(tx, tx_id or compute_tx_id(raw), address)

    def decode_trusted(self, raw: bytes, tx_id: bytes) -> DecodedTx:
        """Decode bytes that this node's own verifier has already fully checked (decode() and
        signatures): skips the canonical re-encoding and the stateless checks it ran."""
        tx = self._decoder.decode_lenient(raw)
        return DecodedTx(tx, tx_id, inspect_signer(tx.body.signer)[1])

    def _describe(self, text: str, raw: bytes) -> str:
        """Turn msgspec's message into one that names the tx's fields (`body.messages[0].amount`,
        found through the message's tag) and the known message types."""
        try:  # the untyped value tells which message type each element of `messages` is
            value = msgspec.msgpack.decode(raw)
        except (msgspec.DecodeError, ValueError, RecursionError):
            value = None
        text = _PATH.sub(lambda match: f"`{compute_field_name(self._info, match.group(1), value) or 'tx'}`", text)
        if _UNKNOWN_TAG_NAMED.search(text):
            text += f"; known message types: {', '.join(self.known_tags)}"
        return "tx: " + text


# msgspec reports an unregistered tag as an invalid value at the first element of a message.
_UNKNOWN_TAG = re.compile(r"Invalid value .* at `\$\[0\]\[4\]\[\d+\]\[0\]`")


_PATH = re.compile(r"`(\$[^`]*)`")
_UNKNOWN_TAG_NAMED = re.compile(r"Invalid value .* at `body\.messages\[\d+\]\.type`")


def _union(types: Sequence[type]) -> Any:
    from typing import Union

    return Union[tuple(types)]  # type: ignore[return-value]


def check_stateless(tx: Tx, chain_id: str) -> Address:
    """Checks that need no state: chain id, bounds, signer shape; raise TxError. Returns the
    signer's address."""
    body = tx.body
    if body.chain_id != chain_id:
        raise ERR_CHAIN_ID(f"body.chain_id: expected {chain_id!r}, got {body.chain_id!r}", "body.chain_id")
    if not 0 <= body.nonce <= MAX_NONCE:
        raise ERR_INVALID(f"body.nonce: expected 0 to {MAX_NONCE}, got {body.nonce}", "body.nonce")
    if not 0 <= body.expiry_height <= MAX_NONCE:
        raise ERR_INVALID(f"body.expiry_height: expected 0 to {MAX_NONCE}, got {body.expiry_height}",
                          "body.expiry_height")
    if not 1 <= len(body.messages) <= MAX_MESSAGES_PER_TX:
        raise ERR_TOO_MANY_MESSAGES(
            f"body.messages: expected 1 to {MAX_MESSAGES_PER_TX} messages, got {len(body.messages)}",
            "body.messages")
    problem, address = inspect_signer(body.signer)
    if problem:
        raise ERR_INVALID(f"body.{problem}", "body.signer")
    key_count = len(body.signer.keys)
    previous = -1
    for entry in tx.signatures:  # strictly increasing from 0: distinct, sorted, each a key's index
        if not previous < entry.key_index < key_count:
            raise ERR_SIGNATURE("signatures: expected distinct key indexes in increasing order, each "
                                f"naming one of the signer's {key_count} keys", "signatures")
        previous = entry.key_index
    if len(tx.signatures) < body.signer.threshold:
        raise ERR_SIGNATURE(f"signatures: expected at least {body.signer.threshold} signatures, "
                            f"got {len(tx.signatures)}", "signatures")
    return address


def verify_tx_signatures(decoded: DecodedTx) -> None:
    """Check every signature over the sign bytes; raise TxError on the first bad one."""
    body = decoded.tx.body
    sign_bytes = compute_sign_bytes(body)
    for entry in decoded.tx.signatures:
        key = body.signer.keys[entry.key_index]
        if not verify_signature(key, sign_bytes, entry.signature):
            raise ERR_SIGNATURE(f"signatures[{entry.key_index}]: signature does not verify against "
                                f"key {key.key.hex()}", "signatures")
