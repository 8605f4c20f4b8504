"""Domain types shared by every layer: heights, amounts, addresses.

They are NewTypes: msgspec encodes and decodes them as their base type, so a message field
declared `amount: Amount` has the same wire encoding as `amount: int` and says what it holds.
"""

from typing import NewType

Height = NewType("Height", int)  # a block height, counted from the genesis' initial height
Amount = NewType("Amount", int)  # micro-credits: 1 credit = 1_000_000 units
Address = NewType("Address", bytes)  # 20 bytes, derived from a signer's public keys (b"": none)

ADDRESS_LEN = 20
HASH_LEN = 32


def address_to_str(address: bytes) -> str:
    """Render an address the way users see it: 'city' + 40 hex digits."""
    return "city" + address.hex()


def address_from_str(text: str, field: str = "address") -> Address:
    """Parse 'city' + 40 hex digits (the 'city' prefix is optional); raise ValueError naming the field."""
    body = text[4:] if text.startswith("city") else text
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raw = b""
    if len(raw) != ADDRESS_LEN:
        raise ValueError(f"{field}: expected 'city' followed by 40 hex digits, got {text!r}")
    return Address(raw)
