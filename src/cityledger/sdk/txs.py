"""Building signed transactions: thin wrappers over core.tx.build_tx for each message type.

Every builder takes the chain id, the signing key (or keys, with `signer` for a k-of-n account),
the sender's next nonce and the message's fields, and returns the canonical tx bytes to submit.
Addresses may be given as 'city…' strings or 20 raw bytes; amounts are integer micro-credits.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from ..core.encoding import Message, encode
from ..core.hashing import compute_tx_id
from ..core.keys import PrivateKey, Signer
from ..core.tx import build_tx
from ..core.types import ADDRESS_LEN, address_from_str
from ..modules.bank import MultiSend, Output, Transfer
from ..modules.governance import Action, SubmitProposal, Vote

KeyOrKeys = PrivateKey | Sequence[PrivateKey]


def to_address(value: str | bytes, field: str = "to") -> bytes:
    """20 address bytes from 'city…' (or 40 hex digits) or raw bytes; raise ValueError naming the field."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) != ADDRESS_LEN:
            raise ValueError(f"{field}: expected {ADDRESS_LEN} bytes, got {len(value)}")
        return bytes(value)
    return address_from_str(value, field)


def sign(chain_id: str, keys: KeyOrKeys, nonce: int, messages: Sequence[Message], *, expiry_height: int = 0,
         signer: Signer | None = None) -> bytes:
    """Sign any list of messages (the general form of the builders below)."""
    key_list = [keys] if isinstance(keys, PrivateKey) else list(keys)
    if not key_list:
        raise ValueError("keys: expected at least one signing key")
    return build_tx(chain_id, key_list, nonce, messages, expiry_height=expiry_height, signer=signer)


def transfer(chain_id: str, keys: KeyOrKeys, nonce: int, to: str | bytes, amount: int, *, expiry_height: int = 0,
             signer: Signer | None = None) -> bytes:
    """Move `amount` micro-credits to `to`."""
    return sign(chain_id, keys, nonce, [Transfer(to_address(to), amount)], expiry_height=expiry_height,
                signer=signer)


def multi_send(chain_id: str, keys: KeyOrKeys, nonce: int, outputs: Iterable[tuple[str | bytes, int]], *,
               expiry_height: int = 0, signer: Signer | None = None) -> bytes:
    """Pay several recipients in one message: outputs are (address, amount) pairs."""
    items = [Output(to_address(to, f"outputs[{i}].to"), amount) for i, (to, amount) in enumerate(outputs)]
    return sign(chain_id, keys, nonce, [MultiSend(items)], expiry_height=expiry_height, signer=signer)


def propose(chain_id: str, keys: KeyOrKeys, nonce: int, action: Action, *, expiry_height: int = 0,
            signer: Signer | None = None) -> bytes:
    """A consortium member proposes a governance action (ParamChange, ValidatorChange, MembershipChange)."""
    return sign(chain_id, keys, nonce, [SubmitProposal(encode(action))], expiry_height=expiry_height,
                signer=signer)


def vote(chain_id: str, keys: KeyOrKeys, nonce: int, proposal_id: int, approve: bool = True, *,
         expiry_height: int = 0, signer: Signer | None = None) -> bytes:
    """A consortium member approves (or withdraws approval of) a proposal."""
    return sign(chain_id, keys, nonce, [Vote(proposal_id, approve)], expiry_height=expiry_height, signer=signer)


def tx_id(tx: bytes) -> str:
    """The id of a tx as the node reports it: SHA-256 of its bytes, hex."""
    return compute_tx_id(tx).hex()
