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

from dataclasses import dataclass
from typing import Any, Generic, Sequence, TypeVar

from .encoding import DecodeError, Message, Record, decoder, encode
from .errors import (
    ERR_CHAIN_ID,
    ERR_DECODE,
    ERR_INVALID,
    ERR_NON_CANONICAL,
    ERR_SIGNATURE,
    ERR_TOO_LARGE,
    ERR_TOO_MANY_MESSAGES,
)
from .hashing import DOMAIN_TX_SIGN, compute_tx_id
from .keys import PrivateKey, Signer, compute_address, validate_signer, verify_signature
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


@dataclass(frozen=True)
class DecodedTx:
    """A decoded, statelessly valid transaction and what the node derives from it."""

    tx: Tx
    raw: bytes
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
        self.chain_id = chain_id
        self.known_tags = sorted(t.__struct_config__.tag for t in message_types)

    def decode(self, raw: bytes) -> DecodedTx:
        """Decode and validate without state; raise TxError naming the bad field."""
        if len(raw) > MAX_TX_BYTES:
            raise ERR_TOO_LARGE(f"tx: {len(raw)} bytes exceeds the limit of {MAX_TX_BYTES}", "tx")
        try:
            tx = self._decoder.decode(raw)
        except DecodeError as exc:
            text = str(exc)
            if text.startswith("non-canonical"):
                raise ERR_NON_CANONICAL(f"tx: {text}", "tx") from None
            raise ERR_DECODE(self._describe(text), "tx") from None
        check_stateless(tx, self.chain_id)
        return DecodedTx(tx, raw, compute_tx_id(raw), compute_address(tx.body.signer))

    def _describe(self, text: str) -> str:
        """Turn msgspec's message into one that names tx fields and the known message types."""
        names = {"$[0][0]": "body.chain_id", "$[0][1]": "body.signer", "$[0][2]": "body.nonce",
                 "$[0][3]": "body.expiry_height", "$[0][4]": "body.messages", "$[1]": "signatures"}
        for path, name in sorted(names.items(), key=lambda item: -len(item[0])):
            text = text.replace(f"`{path}", f"`{name} ({path}")
        if "Invalid value" in text and "$[0][4]" in text:
            text += f"; known message types: {', '.join(self.known_tags)}"
        return "tx: " + text


def _union(types: Sequence[type]) -> Any:
    from typing import Union

    return Union[tuple(types)]  # type: ignore[return-value]


def check_stateless(tx: Tx, chain_id: str) -> None:
    """Checks that need no state: chain id, bounds, signer shape; raise TxError."""
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
    problem = validate_signer(body.signer)
    if problem:
        raise ERR_INVALID(f"body.{problem}", "body.signer")
    indexes = [entry.key_index for entry in tx.signatures]
    if indexes != sorted(set(indexes)) or any(not 0 <= i < len(body.signer.keys) for i in indexes):
        raise ERR_SIGNATURE("signatures: expected distinct key indexes in increasing order, each "
                            f"naming one of the signer's {len(body.signer.keys)} keys", "signatures")
    if len(indexes) < body.signer.threshold:
        raise ERR_SIGNATURE(f"signatures: expected at least {body.signer.threshold} signatures, "
                            f"got {len(indexes)}", "signatures")


def verify_tx_signatures(decoded: DecodedTx) -> None:
    """Check every signature over the sign bytes; raise TxError on the first bad one."""
    body = decoded.tx.body
    sign_bytes = compute_sign_bytes(body)
    for entry in decoded.tx.signatures:
        key = body.signer.keys[entry.key_index]
        if not verify_signature(key, sign_bytes, entry.signature):
            raise ERR_SIGNATURE(f"signatures[{entry.key_index}]: signature does not verify against "
                                f"key {key.key.hex()}", "signatures")
