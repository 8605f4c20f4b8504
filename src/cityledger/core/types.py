"""Domain types shared by every layer: heights, amounts, addresses.

They are NewTypes: msgspec encodes and decodes them as their base type, so a message field
declared `amount: Amount` has the same wire encoding as `amount: int` and says what it holds.
"""

import re
from typing import NewType

Height = NewType("Height", int)  # a block height, counted from the genesis' initial height
Amount = NewType("Amount", int)  # micro-credits: 1 credit = 1_000_000 units
Address = NewType("Address", bytes)  # 20 bytes, derived from a signer's public keys (b"": none)

ADDRESS_LEN = 20
HASH_LEN = 32


def address_to_str(address: bytes) -> str:
    """Render an address the way users see it: 'city' + 40 hex digits."""
    return "city" + address.hex()


# fullmatch, and no bytes.fromhex on its own: that skips whitespace, so " city00…00\n" would pass.
_ADDRESS_RE = re.compile(r"(?:city)?[0-9a-fA-F]{%d}" % (2 * ADDRESS_LEN))


def address_from_str(text: str, field: str = "address") -> Address:
    """Parse 'city' + 40 hex digits (the 'city' prefix is optional); raise ValueError naming the field."""
    if not isinstance(text, str) or not _ADDRESS_RE.fullmatch(text):
        raise ValueError(f"{field}: expected 'city' followed by 40 hex digits, got {str(text)[:64]!r}")
    return Address(bytes.fromhex(text[-2 * ADDRESS_LEN:]))
