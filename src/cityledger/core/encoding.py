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

import json
import re
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


_PATH_STEP = re.compile(r"\[(\d+)\]")


def compute_field_name(kind_info: Any, path: str, value: Any = None) -> str:
    """msgspec's array path of a struct type (`$[0][4][2][2]`) as field names
    (`body.messages[2].amount`). `kind_info` is msgspec.inspect.type_info of the decoded type;
    `value`, the untyped decoding of the same bytes if it has one, picks a union's member by tag."""
    out, info = "", kind_info
    for step in (int(text) for text in _PATH_STEP.findall(path)):
        if isinstance(info, msgspec.inspect.UnionType):
            info = _union_member(info, value, step)
        if isinstance(info, str):  # the tag itself, of no known member
            out, info = out + "." + info, None
        elif isinstance(info, msgspec.inspect.StructType) and info.array_like:
            index = step - (1 if info.tag is not None else 0)  # a tagged struct's element 0 is its tag
            if index < 0:
                out, info = out + ".type", None
            elif index < len(info.fields):
                out, info = out + "." + info.fields[index].name, info.fields[index].type
            else:
                out, info = out + f"[{step}]", None
        else:
            out, info = out + f"[{step}]", getattr(info, "item_type", None)
        value = value[step] if isinstance(value, list) and step < len(value) else None
    return out.lstrip(".")


def _union_member(info: Any, value: Any, step: int) -> Any:
    """The member of a union of tagged structs that an untyped value's tag names; "type" when
    the step is the tag of none of them; None if unknown."""
    tag = value[0] if isinstance(value, list) and value else None
    tagged = [m for m in info.types if isinstance(m, msgspec.inspect.StructType) and m.tag is not None]
    for member in tagged:
        if member.tag == tag:
            return member
    return "type" if step == 0 and tagged and len(tagged) == len(info.types) else None


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


# -- JSON carried inside messages ----------------------------------------------------------------

# Some messages carry JSON (AnonCreds objects and presentations). Python's parser recurses once
# per level of nesting, so the depth is bounded before parsing: ~4 KB of "[[[[…" would otherwise
# raise RecursionError deep inside a handler. No AnonCreds object nests deeper than about 8.
MAX_JSON_DEPTH = 32

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


def compute_json_depth(raw: bytes | str) -> int:
    """How deeply arrays and objects nest in JSON text (string contents skipped); no recursion."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "replace")
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub(b'""', raw)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _refuse_float(text: str) -> Any:
    raise ValueError(f"floats are not allowed, got {text[:32]}")


def parse_json(raw: bytes | str, field: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from a message: nesting at most max_depth, integers but no floats, NaN or
    Infinity (1e400 would parse as inf), valid UTF-8; raise ValueError naming the field."""
    depth = compute_json_depth(raw)
    if depth > max_depth:
        raise ValueError(f"{field}: JSON nests {depth} levels deep; at most {max_depth} are allowed")
    try:
        return json.loads(raw, parse_float=_refuse_float, parse_constant=_refuse_float)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"{field}: not valid JSON without floats ({str(exc)[:200]})") from None
