"""Canonical encoding: msgpack through msgspec, with structs encoded as arrays.

Why msgspec/msgpack: it is among the fastest encoders for Python (about a microsecond to decode a
transaction), it is a published format with implementations in every language, and, restricted as
below, it is canonical — one value has exactly one encoding, which docs/ENCODING.md specifies
byte for byte:

- Structs are encoded as msgpack arrays of their fields in declaration order (``array_like``);
  a message's first element is its versioned type tag, e.g. ``"bank/1.0/transfer"``.
- Integers use the shortest msgpack form; floats are never used; maps are never used on the wire
  (a collection is a list sorted by its key); byte strings use ``bin``, text uses ``str`` (UTF-8).
- Decoding re-encodes and compares: any other encoding of the same value is rejected, so a
  transaction has exactly one id.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

_ENCODER = msgspec.msgpack.Encoder()


class Message(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, tag=True):
    """Base of every transaction message; subclasses set ``tag="<module>/<version>/<name>"``."""


class Record(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """Base of every value stored in the state tree."""


class DecodeError(ValueError):
    """Bytes that are not the canonical encoding of the expected type."""


def encode(value: Any) -> bytes:
    """Canonical bytes of a value."""
    return _ENCODER.encode(value)


class CanonicalDecoder:
    """Decoder for one type that also rejects non-canonical encodings."""

    def __init__(self, kind: type[T] | Any) -> None:
        self.kind = kind
        self._decoder = msgspec.msgpack.Decoder(kind)

    def decode(self, data: bytes) -> Any:
        """Decode and check canonical form; raise DecodeError with the path of the bad field."""
        try:
            value = self._decoder.decode(data)
        except msgspec.ValidationError as exc:
            raise DecodeError(f"invalid value: {exc}") from None
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec raises the latter for bad UTF-8
            raise DecodeError(f"malformed msgpack: {exc}") from None
        if _ENCODER.encode(value) != data:
            raise DecodeError("non-canonical encoding: re-encoding the value gives other bytes")
        return value

    def decode_lenient(self, data: bytes) -> Any:
        """Decode without the canonical check: only for values this node wrote itself."""
        return self._decoder.decode(data)


def decoder(kind: Any) -> CanonicalDecoder:
    """A canonical decoder for ``kind``."""
    return CanonicalDecoder(kind)


def to_json(value: Any) -> Any:
    """A JSON view of a struct: field names as keys, bytes as hex, the message tag under "type"."""
    if isinstance(value, msgspec.Struct):
        out: dict[str, Any] = {}
        tag = type(value).__struct_config__.tag
        if tag is not None:
            out["type"] = tag
        for name in value.__struct_fields__:
            out[name] = to_json(getattr(value, name))
        return out
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in sorted(value.items())}
    return value
